"""The TF1-compatible bilinear resize that NVIDIA's FID Inception applies to its input."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _axis_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # The official affine grid (shifted by half a source pixel minus half a target pixel) with
    # align_corners=False samples output pixel j at source coordinate j * in / out; border
    # padding clamps the right-hand neighbour to the last pixel.
    src = np.arange(out_size, dtype=np.float64) * (in_size / out_size)
    lo = np.floor(src).astype(np.int32)
    frac = (src - lo).astype(np.float32)
    hi = np.minimum(lo + 1, in_size - 1)
    return lo, hi, frac


def _resize_axis(x: jax.Array, axis: int, out_size: int) -> jax.Array:
    lo, hi, frac = _axis_taps(x.shape[axis], out_size)
    shape = [1] * x.ndim
    shape[axis] = out_size
    frac = jnp.asarray(frac).reshape(shape)
    return jnp.take(x, lo, axis=axis) * (1 - frac) + jnp.take(x, hi, axis=axis) * frac


def tf1_bilinear_resize(images: jax.Array, height: int, width: int) -> jax.Array:
    """Resizes float NHWC images like TF1's resize_bilinear (align_corners=False), as NVIDIA's Inception does."""
    if images.ndim != 4:
        raise ValueError(f"expected NHWC images, got shape {images.shape}")
    x = images.astype(jnp.float32)
    if x.shape[1] != height:
        x = _resize_axis(x, 1, height)
    if x.shape[2] != width:
        x = _resize_axis(x, 2, width)
    return x
