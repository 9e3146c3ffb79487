"""Reads NVIDIA's official StyleGAN2-ADA / StyleGAN3 network snapshot pickles without torch.

A snapshot (`network-snapshot-*.pkl`) is a plain pickle of a dict holding the networks 'G', 'D',
'G_ema' and 'augment_pipe' as persistent torch modules, plus 'training_set_kwargs'. R3GAN's
snapshots have the same layout but pickle their networks by value, without constructor arguments,
which are then read off the state dict (see r3gan_kwargs); so do StyleGAN-T's (dill), whose generator's
arguments are read off its modules (see stylegan_t_kwargs). It is read with a restricted unpickler
(see _snapshot_unpickler): nothing in the file is imported, called or executed apart from our own
reconstruction functions, and any other global is refused.

    nets = read_official_pickle("network-snapshot-025000.pkl")
    g = nets["G_ema"]
    module, variables = from_official_state_dict(g.class_name, g.init_kwargs, g.state_dict)
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, BinaryIO, Optional, Union

import numpy as np

from stylegan_jax.convert._restricted_unpickler import Inert
from stylegan_jax.convert._snapshot_unpickler import PersistentRecord, load_snapshot_object
from stylegan_jax.convert._torch_modules import ModuleRecord, submodule
from stylegan_jax.convert.r3gan_kwargs import DISCRIMINATOR as R3GAN_DISCRIMINATOR
from stylegan_jax.convert.r3gan_kwargs import GENERATOR as R3GAN_GENERATOR
from stylegan_jax.convert.r3gan_kwargs import r3gan_init_kwargs
from stylegan_jax.convert.stylegan_t_kwargs import GENERATOR as STYLEGAN_T_GENERATOR
from stylegan_jax.convert.stylegan_t_kwargs import stylegan_t_init_kwargs, text_tower_settings
from stylegan_jax.networks.stylegan_xl import official_stage_kwargs

NETWORK_KEYS = ("G", "D", "G_ema")
SG2_GENERATOR = "training.networks_stylegan2.Generator"
SG2_DISCRIMINATOR = "training.networks_stylegan2.Discriminator"
SG3_GENERATOR = "training.networks_stylegan3.Generator"
XL_GENERATOR = "training.networks_stylegan3_resetting.Generator"
XL_SUPERRES = "training.networks_stylegan3_resetting.SuperresGenerator"
# A Generator's kwargs that it passes on to its MappingNetwork and SynthesisNetwork, and what those two
# get from the Generator besides (num_ws, w_dim); the rest of their kwargs are mapping_kwargs / its own.
_STEM_FROM_MAPPING = ("z_dim", "c_dim", "w_dim")
_STEM_FROM_SYNTHESIS = ("img_resolution", "img_channels")
_MAPPING_FROM_STEM = (*_STEM_FROM_MAPPING, "num_ws")
_SYNTHESIS_FROM_STEM = ("w_dim", *_STEM_FROM_SYNTHESIS)


@dataclasses.dataclass(frozen=True)
class OfficialNetwork:
    """One network of a snapshot: official class name, constructor kwargs and state dict; for a StyleGAN-T
    generator also its CLIP text tower's settings that the weights do not tell ({'heads', 'quick_gelu'})."""

    class_name: str
    init_kwargs: dict[str, Any]
    state_dict: dict[str, np.ndarray]
    text_tower: Optional[dict[str, Any]] = None


def read_official_pickle(path_or_file: Union[str, os.PathLike, BinaryIO]) -> dict[str, Any]:
    """Reads a snapshot: {'G', 'D', 'G_ema' (those present): OfficialNetwork, 'training_set_kwargs',
    'unreadable'}.

    'training_set_kwargs' is a plain dict, or None when absent; 'augment_pipe' is skipped;
    'unreadable' maps a discriminator read past to its class (StyleGAN-XL's or StyleGAN-T's projected D).
    Raises pickle.UnpicklingError for any global outside an official snapshot (nothing of the
    file is run) and ValueError when the pickle is not a network snapshot.
    """
    try:
        return _read_snapshot(path_or_file)
    except RecursionError:
        raise ValueError("not a network snapshot: its objects are nested absurdly deep") from None


def _read_snapshot(path_or_file: Union[str, os.PathLike, BinaryIO]) -> dict[str, Any]:
    if isinstance(path_or_file, (str, os.PathLike)):
        with open(path_or_file, "rb") as f:
            snapshot = load_snapshot_object(f)
    else:
        snapshot = load_snapshot_object(path_or_file)
    if not isinstance(snapshot, dict):
        raise ValueError(f"not a network snapshot: the pickle holds a {type(snapshot).__name__}, "
                         f"expected a dict with some of {list(NETWORK_KEYS)}")
    present = [key for key in NETWORK_KEYS if snapshot.get(key) is not None]
    if not present:
        raise ValueError(f"not a network snapshot: none of {list(NETWORK_KEYS)} among its keys "
                         f"{sorted(map(str, snapshot))}")
    # Only a discriminator may be read past (a projected one); an unreadable generator is an error.
    unreadable = {key: snapshot[key].global_name for key in present if key == "D" and isinstance(snapshot[key], Inert)}
    result: dict[str, Any] = {key: network_from_record(snapshot[key], key) for key in present if key not in unreadable}
    result["unreadable"] = unreadable
    kwargs = snapshot.get("training_set_kwargs")
    result["training_set_kwargs"] = None if kwargs is None else _plain(kwargs, "training_set_kwargs")
    return result


def network_from_record(record: Any, where: str = "network") -> OfficialNetwork:
    """Converts the persistent record of a top-level network (or an R3GAN / StyleGAN-T module record) into an
    OfficialNetwork."""
    if isinstance(record, ModuleRecord) and record.class_name == STYLEGAN_T_GENERATOR:
        return _stylegan_t_network(record, where)
    if isinstance(record, ModuleRecord):
        return _r3gan_network(record, where)
    if isinstance(record, Inert):
        raise ValueError(f"{where}: its class {record.global_name} cannot be read here")
    if not isinstance(record, PersistentRecord):
        raise ValueError(f"{where}: expected a persistent torch module, got {type(record).__name__}")
    class_name = _official_class_name(record, where)
    if "_init_kwargs" not in record.state:
        raise ValueError(f"{where}: the persistent module has no _init_kwargs")
    init_kwargs = _plain(record.state["_init_kwargs"], f"{where}.init_kwargs")
    if class_name == SG2_GENERATOR and "synthesis_kwargs" in init_kwargs:
        # stylegan2-ada-pytorch nests them; networks_stylegan2.Generator takes them as **kwargs.
        init_kwargs.update(init_kwargs.pop("synthesis_kwargs"))
    if class_name == XL_SUPERRES:
        init_kwargs = _xl_stage_kwargs(record, init_kwargs, where)
    return OfficialNetwork(class_name, init_kwargs, state_dict_from_record(record))


def state_dict_from_record(record: PersistentRecord, prefix: str = "") -> dict[str, np.ndarray]:
    """Flattens a module record like torch's state_dict: parameters, persistent buffers, submodules."""
    state = record.state
    non_persistent = state.get("_non_persistent_buffers_set", ())
    entries = [*state.get("_parameters", {}).items(),
               *((name, buf) for name, buf in state.get("_buffers", {}).items() if name not in non_persistent)]
    result = {}
    for name, value in entries:
        if value is None:
            continue  # torch registers None for absent optional parameters and buffers
        if not isinstance(value, np.ndarray):
            raise ValueError(f"{prefix}{name}: expected a tensor, got {type(value).__name__}")
        result[prefix + name] = value
    for name, module in state.get("_modules", {}).items():
        if module is None:
            continue
        if not isinstance(module, (PersistentRecord, ModuleRecord)):
            kind = module.global_name if isinstance(module, Inert) else type(module).__name__
            raise ValueError(f"{prefix}{name}: expected a torch module of a generator or discriminator, got {kind}")
        result.update(state_dict_from_record(module, f"{prefix}{name}."))
    return result


def _official_class_name(record: PersistentRecord, where: str) -> str:
    # The pickle stores the bare class name; the module follows from the network's structure.
    if record.class_name == "Discriminator":
        return SG2_DISCRIMINATOR
    if record.class_name == "SuperresGenerator":
        return XL_SUPERRES
    if record.class_name == "Generator":
        if submodule(record, "mapping", "embed") is not None:
            return XL_GENERATOR  # StyleGAN-XL's class embedding
        return SG3_GENERATOR if _submodule_class(record, "synthesis", "input") == "SynthesisInput" else SG2_GENERATOR
    raise ValueError(f"{where}: unsupported network class {record.class_name!r}; "
                     "expected 'Generator', 'SuperresGenerator' or 'Discriminator'")


def _xl_stage_kwargs(record: PersistentRecord, init_kwargs: dict[str, Any], where: str) -> dict[str, Any]:
    """Our SuperresGenerator kwargs of an official stage (its earlier stages recovered from its layer names)."""
    stem = _xl_stem_kwargs(record, where)
    layer_names = submodule(record, "synthesis").state.get("layer_names")
    if not (isinstance(layer_names, list) and all(isinstance(name, str) for name in layer_names)):
        raise ValueError(f"{where}: the SuperresGenerator's synthesis network has no list of layer names")
    try:
        return official_stage_kwargs(stem, init_kwargs, layer_names)
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{where}: {error}") from None


def _xl_stem_kwargs(record: PersistentRecord, where: str) -> dict[str, Any]:
    """The Generator kwargs of a SuperresGenerator's stem, from the kwargs its mapping and synthesis
    networks were built with (the official stage loads its stem from a file it does not keep)."""
    parts = {}
    for name in ("mapping", "synthesis"):
        module = submodule(record, name)
        if not isinstance(module, PersistentRecord) or "_init_kwargs" not in module.state:
            raise ValueError(f"{where}: the SuperresGenerator has no persistent {name} network with its kwargs")
        parts[name] = _plain(module.state["_init_kwargs"], f"{where}.{name}.init_kwargs")
    mapping, synthesis = parts["mapping"], parts["synthesis"]
    missing = [key for key in _STEM_FROM_MAPPING if key not in mapping]
    missing += [key for key in _STEM_FROM_SYNTHESIS if key not in synthesis]
    if missing:
        raise ValueError(f"{where}: the stem's networks lack the kwargs {missing}")
    return {**{key: mapping[key] for key in _STEM_FROM_MAPPING},
            **{key: synthesis[key] for key in _STEM_FROM_SYNTHESIS},
            "mapping_kwargs": {k: v for k, v in mapping.items() if k not in _MAPPING_FROM_STEM},
            **{k: v for k, v in synthesis.items() if k not in _SYNTHESIS_FROM_STEM}}


def _stylegan_t_network(record: ModuleRecord, where: str) -> OfficialNetwork:
    try:
        return OfficialNetwork(record.class_name, stylegan_t_init_kwargs(record), state_dict_from_record(record),
                               text_tower_settings(record))
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def _r3gan_network(record: ModuleRecord, where: str) -> OfficialNetwork:
    if record.class_name not in (R3GAN_GENERATOR, R3GAN_DISCRIMINATOR):
        raise ValueError(f"{where}: unsupported network class {record.class_name!r}; expected "
                         f"{R3GAN_GENERATOR!r} or {R3GAN_DISCRIMINATOR!r}")
    state_dict = state_dict_from_record(record)
    stages = submodule(record, "Model", "MainLayers")
    stages = {} if stages is None else stages.state["_modules"]
    # A stage's DataType is a torch dtype (an inert marker carrying its name); reduced ones are FP16Stages.
    low = [int(i) for i, stage in stages.items() if isinstance(stage, ModuleRecord)
           and getattr(stage.state.get("DataType"), "payload", None) in ("bfloat16", "float16")]
    return OfficialNetwork(record.class_name, r3gan_init_kwargs(record.class_name, state_dict, low), state_dict)


def _submodule_class(record: PersistentRecord, *path: str) -> str | None:
    module = submodule(record, *path)
    return None if module is None else module.class_name


def _plain(value: Any, where: str) -> Any:
    """Converts pickled kwargs (EasyDict, numpy scalars and arrays, ...) to plain Python values."""
    if isinstance(value, dict):
        return {key: _plain(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item, f"{where}[{i}]") for i, item in enumerate(value))
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise ValueError(f"{where}: unexpected {type(value).__name__} in constructor arguments")
