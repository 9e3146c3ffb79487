"""Resizing as torch.nn.functional.interpolate computes it (bilinear without antialiasing, and area), as
dense separable matrices (one matmul per axis: the same program on CPU, GPU and TPU)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def bilinear_matrix(in_size: int, out_size: int, align_corners: bool) -> np.ndarray:
    """[out, in] weights of torch's 1-D linear interpolation (negative source coordinates clamp to 0)."""
    j = np.arange(out_size, dtype=np.float64)
    if align_corners:
        src = j * ((in_size - 1) / (out_size - 1)) if out_size > 1 else np.zeros_like(j)
    else:
        src = np.maximum((j + 0.5) * (in_size / out_size) - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    hi = np.minimum(lo + 1, in_size - 1)
    frac = src - lo
    m = np.zeros((out_size, in_size), np.float64)
    np.add.at(m, (np.arange(out_size), lo), 1 - frac)
    np.add.at(m, (np.arange(out_size), hi), frac)
    return m.astype(np.float32)


def area_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out, in] weights of torch's 1-D adaptive average pooling: output i averages inputs
    floor(i * in / out) .. ceil((i + 1) * in / out) - 1 (also when up-sampling)."""
    m = np.zeros((out_size, in_size), np.float64)
    for i in range(out_size):
        start = (i * in_size) // out_size
        end = -(-((i + 1) * in_size) // out_size)
        m[i, start:end] = 1.0 / (end - start)
    return m.astype(np.float32)


def _separable(x: jax.Array, rows: np.ndarray, cols: np.ndarray) -> jax.Array:
    hp = jax.lax.Precision.HIGHEST
    x = jnp.einsum("oh,nhwc->nowc", jnp.asarray(rows), x, precision=hp)
    return jnp.einsum("pw,nowc->nopc", jnp.asarray(cols), x, precision=hp)


def bilinear_resize(x: jax.Array, height: int, width: int, align_corners: bool = False) -> jax.Array:
    """NHWC `x` resized to (height, width) like F.interpolate(mode='bilinear')."""
    if x.shape[1:3] == (height, width):
        return x
    return _separable(x, bilinear_matrix(x.shape[1], height, align_corners),
                      bilinear_matrix(x.shape[2], width, align_corners))


def area_resize(x: jax.Array, height: int, width: int) -> jax.Array:
    """NHWC `x` resized to (height, width) like F.interpolate(mode='area')."""
    if x.shape[1:3] == (height, width):
        return x
    return _separable(x, area_matrix(x.shape[1], height), area_matrix(x.shape[2], width))
