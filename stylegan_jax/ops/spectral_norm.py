"""Spectral normalisation as torch.nn.utils.spectral_norm computes it in training mode.

The weight is viewed as a matrix [out, everything else]; one power iteration from the stored
vector u gives v = normalise(W^T u), u' = normalise(W v) (both constants of the gradient), and the
layer uses W / (u'^T W v). The caller stores u' for the next call.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

EPSILON = 1e-12  # torch's normalize() floor on the norm


def _normalize(v: jax.Array) -> jax.Array:
    return v / jnp.maximum(jnp.linalg.norm(v), EPSILON)


def spectral_normalize(weight: jax.Array, u: jax.Array, out_axis: int = -1) -> tuple[jax.Array, jax.Array]:
    """(weight / sigma, updated u) after one power iteration; `out_axis` is the output-feature axis."""
    matrix = jnp.moveaxis(weight, out_axis, 0).reshape(weight.shape[out_axis], -1)
    hp = jax.lax.Precision.HIGHEST
    frozen = jax.lax.stop_gradient(matrix)
    v = _normalize(jnp.matmul(u, frozen, precision=hp))
    u_new = _normalize(jnp.matmul(frozen, v, precision=hp))
    v, u_new = jax.lax.stop_gradient(v), jax.lax.stop_gradient(u_new)
    sigma = jnp.dot(u_new, jnp.matmul(matrix, v, precision=hp), precision=hp)
    return weight / sigma, u_new
