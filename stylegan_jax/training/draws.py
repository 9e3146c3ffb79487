"""The random inputs of the training phases, drawn from a key or given from outside (replay).

Every random number an official training phase consumes has a slot here, so that a phase is a
pure function of (state, batch, draws). The normal path draws them inside the compiled phase from
the state's key; a replay of an official run passes the recorded values instead.

Per generator call: `mix_cutoff` (int in [1, num_ws)), `mix_u` (U[0,1)) and `mix_z` (the second
latent), present only with style mixing; `noise`: the per-layer noise images as the generator's
`noise_inputs` collection (StyleGAN2; empty for StyleGAN3). Per phase part (see Trainer): `z`,
the path-length noise `pl_noise` (NHWC), and the augmentation draws of each discriminator call
(`aug_fake`, `aug_real`) when augmentation is on.
"""
from __future__ import annotations

from typing import Any

import jax

from stylegan_jax.networks.stylegan2 import NOISE_INPUTS

LayerPath = tuple[str, ...]


def noise_layers(g_buffers: dict, prefix: LayerPath = ()) -> dict[LayerPath, tuple[int, int]]:
    """Path of every generator layer with a `noise_const` buffer -> its (height, width)."""
    layers = {}
    for key, value in g_buffers.items():
        if key == "noise_const":
            layers[prefix] = tuple(value.shape)
        elif hasattr(value, "items"):
            layers.update(noise_layers(value, (*prefix, key)))
    return layers


def noise_collection(images: dict[LayerPath, jax.Array]) -> dict:
    """{layer path: noise image [N, H, W, 1]} -> the generator's `noise_inputs` variable collection."""
    tree: dict = {}
    for path, image in images.items():
        node = tree
        for key in path:
            node = node.setdefault(key, {})
        node["noise"] = image
    return {NOISE_INPUTS: tree} if tree else {}


def sample_g_call(key: jax.Array, batch: int, z_dim: int, num_ws: int, mixing: bool,
                  layers: dict[LayerPath, tuple[int, int]]) -> dict[str, Any]:
    """The draws of one generator call: style-mixing cutoff, decision and latent, per-layer noise."""
    k_cut, k_u, k_z, k_noise = jax.random.split(key, 4)
    draws: dict[str, Any] = {}
    if mixing:
        draws.update(mix_cutoff=jax.random.randint(k_cut, (), 1, num_ws), mix_u=jax.random.uniform(k_u, ()),
                     mix_z=jax.random.normal(k_z, (batch, z_dim)))
    keys = jax.random.split(k_noise, max(len(layers), 1))
    draws["noise"] = noise_collection({path: jax.random.normal(k, (batch, *shape, 1))
                                       for k, (path, shape) in zip(keys, sorted(layers.items()))})
    return draws
