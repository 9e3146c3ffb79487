"""A generator's own export format: variables as msgpack (flax.serialization) plus a JSON spec.

One file holds {'format', 'version', 'spec' (JSON text), 'variables'} as msgpack; a folder holds
`generator.json` (format, version, class_name, init_kwargs) and `variables.msgpack`. Loading needs
only the network definitions, not the training code.
"""
from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Mapping

import flax.linen as nn
import jax
import numpy as np
from flax import serialization

from stylegan_jax.convert.state_dict import (
    COLLECTIONS, flatten_variables, from_official_state_dict, network_spec, to_official_state_dict)
from stylegan_jax.convert.zip_files import read_npz_arrays

FORMAT = "stylegan_jax.generator"
VERSION = 1
SPEC_FILE = "generator.json"
VARIABLES_FILE = "variables.msgpack"


def generator_spec(G: nn.Module) -> dict[str, Any]:
    """JSON-ready {format, version, class_name, init_kwargs} of a generator (official class name and kwargs)."""
    class_name, init_kwargs = network_spec(G)
    return dict(format=FORMAT, version=VERSION, class_name=class_name,
                init_kwargs={name: _jsonable(value, name) for name, value in init_kwargs.items()})


def export_generator(path: str | os.PathLike, G: nn.Module, variables: Mapping[str, Any],
                     folder: bool = False) -> pathlib.Path:
    """Saves the generator's params and buffers with its spec, as one file or (folder=True) a folder."""
    spec = generator_spec(G)
    state = {name: jax.tree_util.tree_map(np.asarray, dict(variables[name])) for name in COLLECTIONS
             if name in variables}
    path = pathlib.Path(path)
    if folder:
        path.mkdir(parents=True, exist_ok=True)
        (path / SPEC_FILE).write_text(json.dumps(spec, indent=2) + "\n")
        (path / VARIABLES_FILE).write_bytes(serialization.msgpack_serialize(state))
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = dict(format=FORMAT, version=VERSION, spec=json.dumps(spec), variables=state)
        path.write_bytes(serialization.msgpack_serialize(payload))
    return path


def export_state_dict(path: str | os.PathLike, G: nn.Module, variables: Mapping[str, Any]) -> pathlib.Path:
    """Saves the official state dict (dotted names, official layouts) as .npz, with 'meta/class_name' and
    'meta/init_kwargs' (JSON), e.g. for torch's load_state_dict."""
    spec = generator_spec(G)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"meta/class_name": np.array(spec["class_name"]),
            "meta/init_kwargs": np.array(json.dumps(spec["init_kwargs"]))}
    with open(path, "wb") as f:
        np.savez(f, **to_official_state_dict(G, variables), **meta)
    return path


def load_state_dict_export(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Rebuilds (module, variables) from an export_state_dict .npz; ValueError when it is not one."""
    arrays = read_npz_arrays(path)
    if "meta/class_name" not in arrays or "meta/init_kwargs" not in arrays:
        raise ValueError(f"{path} is an .npz without 'meta/class_name' and 'meta/init_kwargs': "
                         "not a stylegan_jax state-dict export")
    state = {name: value for name, value in arrays.items() if not name.startswith("meta/")}
    return from_official_state_dict(str(arrays["meta/class_name"]), json.loads(str(arrays["meta/init_kwargs"])),
                                    state)


def is_exported_folder(path: str | os.PathLike) -> bool:
    """Whether `path` is a folder written by export_generator(..., folder=True)."""
    return (pathlib.Path(path) / SPEC_FILE).is_file()


def load_exported(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Rebuilds (module, variables) from an export file or folder; ValueError when it is not one."""
    path = pathlib.Path(path)
    if path.is_dir():
        spec = _read_json(path / SPEC_FILE)
        state = _restore((path / VARIABLES_FILE).read_bytes(), path / VARIABLES_FILE)
    else:
        payload = _restore(path.read_bytes(), path)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"{path} is not a stylegan_jax generator export")
        spec, state = json.loads(payload["spec"]), payload.get("variables")
    if spec.get("format") != FORMAT or spec.get("version") != VERSION:
        raise ValueError(f"{path}: unsupported export format {spec.get('format')!r} version {spec.get('version')!r} "
                         f"(expected {FORMAT!r} version {VERSION})")
    if not isinstance(state, dict):
        raise ValueError(f"{path}: the export holds no variables")
    flat = {name: leaf for name, (_, _, leaf) in flatten_variables(state).items()}
    return from_official_state_dict(spec["class_name"], spec["init_kwargs"], flat)


def _restore(data: bytes, where: pathlib.Path) -> Any:
    try:
        return serialization.msgpack_restore(data)
    except Exception as e:  # msgpack raises several unrelated types for foreign bytes
        raise ValueError(f"{where} is not a stylegan_jax generator export (not msgpack: {e})") from e


def _read_json(path: pathlib.Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON ({e})") from e


def _jsonable(value: Any, name: str) -> Any:
    """Constructor arguments as JSON values (mappings -> objects, tuples -> lists, dtypes -> names)."""
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item, f"{name}.{key}") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, name) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    try:
        return np.dtype(value).name  # compute_dtype, e.g. jnp.bfloat16
    except TypeError:
        raise ValueError(f"cannot export constructor argument {name}={value!r}") from None
