"""Improved precision and recall: k-NN manifold estimates of two feature sets."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


def _distances_f16(rows: jax.Array, cols: jax.Array) -> jax.Array:
    # Euclidean distances the way torch.cdist computes them for large inputs (one matmul of
    # augmented vectors: |x|^2 + |y|^2 - 2 x.y), in float32, then rounded to float16 like the
    # official code, whose features and distances are half precision.
    rows_sq = jnp.sum(rows * rows, axis=1, keepdims=True)
    cols_sq = jnp.sum(cols * cols, axis=1, keepdims=True)
    rows_aug = jnp.concatenate([rows * -2, rows_sq, jnp.ones_like(rows_sq)], axis=1)
    cols_aug = jnp.concatenate([cols, jnp.ones_like(cols_sq), cols_sq], axis=1)
    squared = jnp.matmul(rows_aug, cols_aug.T, precision=jax.lax.Precision.HIGHEST)
    return jnp.sqrt(jnp.maximum(squared, 1e-30)).astype(jnp.float16)


@functools.partial(jax.jit, static_argnames="nhood_size")
def _kth_neighbour_distance(rows: jax.Array, manifold: jax.Array, nhood_size: int) -> jax.Array:
    # The (k+1)-th smallest distance: each manifold point is its own nearest neighbour.
    dist = _distances_f16(rows, manifold).astype(jnp.float32)
    return (-jax.lax.top_k(-dist, nhood_size + 1)[0][:, -1]).astype(jnp.float16)


@jax.jit
def _inside_manifold(probes: jax.Array, manifold: jax.Array, radii: jax.Array) -> jax.Array:
    return jnp.any(_distances_f16(probes, manifold) <= radii[None, :], axis=1)


def _coverage(manifold: jax.Array, probes: jax.Array, nhood_size: int, row_batch_size: int) -> float:
    radii = jnp.concatenate([_kth_neighbour_distance(manifold[i:i + row_batch_size], manifold, nhood_size)
                             for i in range(0, manifold.shape[0], row_batch_size)])
    inside = np.concatenate([np.asarray(_inside_manifold(probes[i:i + row_batch_size], manifold, radii))
                             for i in range(0, probes.shape[0], row_batch_size)])
    return float(inside.astype(np.float32).mean())


def precision_recall(real_features: np.ndarray, gen_features: np.ndarray, nhood_size: int = 3,
                     row_batch_size: int = 1000) -> tuple[float, float]:
    """(precision, recall): the fraction of generated items inside the real k-NN manifold, and vice versa."""
    real = np.asarray(real_features, np.float32)
    gen = np.asarray(gen_features, np.float32)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise ValueError(f"precision/recall needs features [N, D] with equal D, got {real.shape} and {gen.shape}")
    if min(real.shape[0], gen.shape[0]) <= nhood_size:
        raise ValueError(f"precision/recall needs more than nhood_size={nhood_size} items per set")
    real = jnp.asarray(real.astype(np.float16).astype(np.float32))
    gen = jnp.asarray(gen.astype(np.float16).astype(np.float32))
    return (_coverage(real, gen, nhood_size, row_batch_size),
            _coverage(gen, real, nhood_size, row_batch_size))
