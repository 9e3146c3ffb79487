"""Metric sources from our objects: a Flax generator and a dataset config."""
from __future__ import annotations

import functools
from typing import Any, Mapping

import flax.linen as nn
import jax
import numpy as np

from stylegan_jax.eval.sources import Generator, RealImages
from stylegan_jax.sampling.render import takes_transform


def _redraw_noise(variables: Mapping[str, Any], key: jax.Array) -> dict:
    """Replaces every constant-noise buffer with fresh N(0, 1) noise (as the official PPL does)."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(variables)
    keys = jax.random.split(key, max(len(leaves), 1))
    new = [jax.random.normal(k, x.shape, x.dtype) if path[-1].key == "noise_const" else x
           for k, (path, x) in zip(keys, leaves)]
    return jax.tree_util.tree_unflatten(treedef, new)


def generator_source(G: nn.Module, variables: Mapping[str, Any]) -> Generator:
    """The jitted callables the metrics need, from one of our generators (const noise, psi = 1)."""
    bind = lambda fn: functools.partial(jax.jit(fn), variables)
    render = None
    if takes_transform(G):
        render = bind(lambda v, z, c, transform: G.apply(v, z, c, noise_mode="const", transform=transform))
    return Generator(
        generate=bind(lambda v, z, c: G.apply(v, z, c, noise_mode="const")),
        z_dim=G.z_dim, c_dim=G.c_dim,
        mapping=bind(lambda v, z, c: G.apply(v, z, c, method="mapping")),
        synthesis=bind(lambda v, ws, key: G.apply(_redraw_noise(v, key), ws, noise_mode="const", method="synthesis")),
        render=render)


def dataset_source(dataset_cfg, batch_size: int = 64) -> RealImages:
    """All readable images of a dataset config once, in order, with its labels and identity."""
    from stylegan_jax.data import iterate_images, open_dataset

    info = open_dataset(dataset_cfg, seed=0, batch_size=1).info
    labels = None
    if info.c_dim > 0:
        labels = np.concatenate([b["label"] for b in iterate_images(dataset_cfg, batch_size)])
    return RealImages(identity=info.identity,
                      images=lambda: (b["image"] for b in iterate_images(dataset_cfg, batch_size)),
                      resolution=info.resolution, labels=labels, xflip=info.xflip, batch_size=batch_size)
