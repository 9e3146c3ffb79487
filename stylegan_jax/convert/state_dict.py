"""Converts between official state dicts (dotted names, official layouts) and Flax variables.

Module trees mirror the official attribute names and keep the official array layouts, so
'synthesis.b8.conv0.affine.weight' is variables['params']['synthesis']['b8']['conv0']['affine']['weight'].
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Mapping

import flax.core
import flax.linen as nn
import jax
import numpy as np

from stylegan_jax.images import image_size

COLLECTIONS = ("params", "buffers")

NETWORK_CLASSES = {
    "training.networks_stylegan2.Generator": "stylegan_jax.networks.stylegan2:Generator",
    "training.networks_stylegan2.Discriminator": "stylegan_jax.networks.discriminator:Discriminator",
    "training.networks_stylegan3.Generator": "stylegan_jax.networks.stylegan3:Generator",
    "training.networks_stylegan3_resetting.Generator": "stylegan_jax.networks.stylegan_xl:Generator",
    "training.networks_stylegan3_resetting.SuperresGenerator": "stylegan_jax.networks.stylegan_xl:SuperresGenerator",
    "training.networks_stylegan.G_style": "stylegan_jax.networks.stylegan2019:Generator",
    "training.networks_stylegan.D_basic": "stylegan_jax.networks.stylegan2019:Discriminator",
    "pg_modules.discriminator.ProjectedDiscriminator": "stylegan_jax.networks.projected:ProjectedDiscriminator",
    "training.networks.Generator": "stylegan_jax.networks.r3gan:Generator",
    "training.networks.Discriminator": "stylegan_jax.networks.r3gan:Discriminator",
    "networks.generator.Generator": "stylegan_jax.networks.stylegan_t:Generator",
    "networks.discriminator.ProjectedDiscriminator": "stylegan_jax.networks.stylegan_t_d:StyleGANTDiscriminator",
}

# Constructor arguments that a state dict implies but official kwargs lack: StyleGAN-XL reads its
# class-embedding table from a file, so only 'mapping.embed.weight' tells the table's size; StyleGAN-T's
# text-embedding width is its CLIP model's.
# (A SuperresGenerator's kwargs combine its stem's and its own: see stylegan_xl.superres_init_kwargs.)
KWARGS_FROM_STATE_DICT = {
    "training.networks_stylegan3_resetting.Generator": "stylegan_jax.networks.stylegan_xl:init_kwargs_from_state_dict",
    "training.networks_stylegan3_resetting.SuperresGenerator":
        "stylegan_jax.networks.stylegan_xl:init_kwargs_from_state_dict",
    "networks.generator.Generator": "stylegan_jax.networks.stylegan_t:init_kwargs_from_state_dict",
}

# Entries of an official state dict that belong to another network: StyleGAN-T's G holds its frozen CLIP
# text encoder (loaded separately by stylegan_jax.perceptual.clip_text). Maps to (own entries, the rest).
FOREIGN_ENTRIES = {
    "networks.generator.Generator": "stylegan_jax.networks.stylegan_t:split_clip_state_dict",
}


def _resolve(target: str) -> Any:
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)


def build_network(class_name: str, init_kwargs: Mapping[str, Any]) -> nn.Module:
    """Instantiates our module for an official class name and its constructor kwargs."""
    if class_name not in NETWORK_CLASSES:
        raise ValueError(f"unsupported network class {class_name!r}; expected one of {sorted(NETWORK_CLASSES)}")
    cls = _resolve(NETWORK_CLASSES[class_name])
    fields = set(cls.__dataclass_fields__) - {"parent", "name"}
    unknown = sorted(set(init_kwargs) - fields)
    if unknown:
        raise ValueError(f"{class_name}: unsupported constructor argument(s) {unknown}")
    kwargs = dict(init_kwargs)
    if isinstance(kwargs.get("img_resolution"), (list, tuple)):  # [height, width]: a hashable pair
        try:
            kwargs["img_resolution"] = image_size(kwargs["img_resolution"])
        except ValueError as e:
            raise ValueError(f"{class_name}: img_resolution: {e}") from None
    return cls(**kwargs)


def network_spec(module: nn.Module) -> tuple[str, dict[str, Any]]:
    """Inverse of `build_network`: the official class name and the fields that differ from their defaults."""
    path = f"{type(module).__module__}:{type(module).__name__}"
    names = [name for name, target in NETWORK_CLASSES.items() if target == path]
    if not names:
        raise ValueError(f"{path} is not a network that build_network can rebuild")
    init_kwargs = {}
    for field in dataclasses.fields(module):
        if field.name in ("parent", "name"):
            continue
        value = getattr(module, field.name)
        value = flax.core.unfreeze(value) if isinstance(value, flax.core.FrozenDict) else value
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = dataclasses.MISSING
        if default is dataclasses.MISSING or value != default:
            init_kwargs[field.name] = value
    return names[0], init_kwargs


def flatten_variables(variables: Mapping[str, Any]) -> dict[str, tuple[str, tuple[str, ...], Any]]:
    """Maps each dotted official name to (collection, path, leaf) for the params and buffers."""
    flat = {}
    for collection in COLLECTIONS:
        leaves = jax.tree_util.tree_flatten_with_path(dict(variables.get(collection, {})))[0]
        for path, leaf in leaves:
            keys = tuple(p.key for p in path)
            flat[".".join(keys)] = (collection, keys, leaf)
    return flat


def abstract_variables(module: nn.Module) -> dict:
    """Shapes and dtypes of the module's variables, computed without running it."""
    rngs = {"params": jax.random.key(0), "noise": jax.random.key(1)}
    return jax.eval_shape(lambda: module.init(rngs, *module.example_inputs()))


def _unflatten(entries) -> dict:
    tree: dict = {}
    for collection, keys, value in entries:
        node = tree.setdefault(collection, {})
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return tree


def _describe(names) -> str:
    names = sorted(names)
    return ", ".join(names[:10]) + (f" (and {len(names) - 10} more)" if len(names) > 10 else "")


def from_official_state_dict(class_name: str, init_kwargs: Mapping[str, Any],
                             state_dict: Mapping[str, Any]) -> tuple[nn.Module, dict]:
    """Builds (module, variables) from an official class name, its kwargs and its state dict.

    Every official parameter and buffer must be consumed: unknown or missing names and shape
    mismatches raise ValueError naming them.
    """
    if class_name in KWARGS_FROM_STATE_DICT:
        init_kwargs = _resolve(KWARGS_FROM_STATE_DICT[class_name])(init_kwargs, state_dict)
    if class_name in FOREIGN_ENTRIES:
        state_dict = _resolve(FOREIGN_ENTRIES[class_name])(state_dict)[0]
    module = build_network(class_name, init_kwargs)
    expected = flatten_variables(abstract_variables(module))
    missing = set(expected) - set(state_dict)
    unknown = set(state_dict) - set(expected)
    if missing:
        raise ValueError(f"{class_name}: state dict lacks {_describe(missing)}")
    if unknown:
        raise ValueError(f"{class_name}: state dict has unknown entries {_describe(unknown)}")
    entries = []
    for name, (collection, keys, spec) in expected.items():
        value = state_dict[name]
        if np.shape(value) != tuple(spec.shape):  # checked before the data is touched
            raise ValueError(f"{class_name}: {name} has shape {np.shape(value)}, expected {tuple(spec.shape)}")
        entries.append((collection, keys, jax.numpy.asarray(np.asarray(value, dtype=np.float32))))
    return module, _unflatten(entries)


def to_official_state_dict(module: nn.Module, variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Returns the official state dict (dotted names, float32 numpy arrays) of our variables."""
    del module  # names and layouts already are the official ones
    return {name: np.asarray(leaf, dtype=np.float32)
            for name, (_, _, leaf) in flatten_variables(variables).items()}
