"""The math of Perceptual Path Length: spherical interpolation and the trimmed mean."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _normalize(x: jax.Array) -> jax.Array:
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def slerp(a: jax.Array, b: jax.Array, t: jax.Array) -> jax.Array:
    """Spherical interpolation between the directions of a and b ([..., D]); t broadcasts as [..., 1]."""
    a, b = _normalize(a), _normalize(b)
    d = jnp.sum(a * b, axis=-1, keepdims=True)
    p = t * jnp.arccos(d)
    c = _normalize(b - d * a)
    return _normalize(a * jnp.cos(p) + c * jnp.sin(p))


def trimmed_mean(dist: np.ndarray) -> float:
    """Mean of the values between the 1st ('lower') and 99th ('higher') percentiles, as the official PPL."""
    dist = np.asarray(dist)
    if dist.ndim != 1 or dist.size == 0:
        raise ValueError(f"PPL distances must be a non-empty vector, got shape {dist.shape}")
    lo = np.percentile(dist, 1, method="lower")
    hi = np.percentile(dist, 99, method="higher")
    return float(dist[(dist >= lo) & (dist <= hi)].mean())
