"""Normalisation ops of the StyleGAN networks: 2nd-moment normalisation and minibatch stddev."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def normalize_2nd_moment(x: jax.Array, dim: int = 1, eps: float = 1e-8) -> jax.Array:
    """Scales `x` so that its mean square along `dim` is one."""
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=dim, keepdims=True) + eps)


def minibatch_std(x: jax.Array, group_size: int | None, num_channels: int = 1) -> jax.Array:
    """Appends `num_channels` minibatch-stddev feature maps to NHWC `x` (StyleGAN2 epilogue).

    Samples are split into groups of `group_size` (the whole batch if None or larger) taken
    with stride N // group_size, as the official layer does; channels are split into
    `num_channels` groups whose mean stddev becomes one constant map each.
    """
    n, h, w, c = x.shape
    g = n if group_size is None else min(group_size, n)
    if n % g != 0:
        raise ValueError(f"batch size {n} must be divisible by the minibatch-stddev group size {g}")
    if c % num_channels != 0:
        raise ValueError(f"{c} channels cannot be split into {num_channels} stddev channels")
    f = num_channels
    y = x.reshape(g, n // g, h, w, f, c // f).astype(jnp.float32)
    y = y - jnp.mean(y, axis=0)
    y = jnp.sqrt(jnp.mean(jnp.square(y), axis=0) + 1e-8)
    y = jnp.mean(y, axis=(1, 2, 4))
    y = y.astype(x.dtype)[:, None, None, :]
    y = jnp.tile(y, (g, h, w, 1))
    return jnp.concatenate([x, y], axis=-1)
