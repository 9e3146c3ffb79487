"""Metric sources from our objects: a Flax generator and a dataset config."""
from __future__ import annotations

from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.eval.sharding import ShardedBatchMap
from stylegan_jax.eval.sources import Generator, RealImages
from stylegan_jax.networks.layers import takes_transform


def _redraw_noise(variables: Mapping[str, Any], key: jax.Array) -> dict:
    """Replaces every constant-noise buffer with fresh N(0, 1) noise (as the official PPL does)."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(variables)
    keys = jax.random.split(key, max(len(leaves), 1))
    new = [jax.random.normal(k, x.shape, x.dtype) if path[-1].key == "noise_const" else x
           for k, (path, x) in zip(keys, leaves)]
    return jax.tree_util.tree_unflatten(treedef, new)


def generator_source(G: nn.Module, variables: Mapping[str, Any], batch_size: int = 64) -> Generator:
    """The callables the metrics need, from one of our generators (const noise, psi = 1).

    Each runs jitted and sharded on the batch axis over all devices (chunks of at most `batch_size`).
    """
    def sharded(fn: Callable, params: Any) -> ShardedBatchMap:
        return ShardedBatchMap(fn, params, batch_size)

    generate = sharded(lambda v, z, c: G.apply(v, z, c, noise_mode="const"), variables)
    variables = generate.params  # on every device once, shared by the other maps
    mapping = sharded(lambda v, z, c: G.apply(v, z, c, method="mapping"), variables)
    synthesis_map = sharded(
        lambda v_key, ws: G.apply(_redraw_noise(*v_key), ws, noise_mode="const", method="synthesis"),
        (variables, jax.random.key(0)))

    def synthesis(ws: jax.Array, noise_key: jax.Array) -> np.ndarray:
        return synthesis_map(ws, params=(variables, noise_key))

    render = None
    if takes_transform(G):
        render_map = sharded(lambda v_t, z, c: G.apply(v_t[0], z, c, noise_mode="const", transform=v_t[1]),
                             (variables, jnp.eye(3)))

        def render(z: jax.Array, c: jax.Array, transform: jax.Array) -> np.ndarray:
            return render_map(z, c, params=(variables, transform))

    return Generator(generate=generate, z_dim=G.z_dim, c_dim=G.c_dim, mapping=mapping, synthesis=synthesis,
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
                      resolution=info.resolution, labels=labels, xflip=info.xflip, batch_size=batch_size,
                      count=info.num_images)
