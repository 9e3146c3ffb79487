"""Ops of progressive growing and of the 2019 StyleGAN layers, on NHWC arrays.

Levels of detail follow the official convention: `lod` 0 is the full resolution, `lod` k the
resolution halved k times, and a fractional `lod` a fade between two levels.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.ops.conv2d import conv2d, transposed_conv2d


def lerp_clip(a: jax.Array, b: jax.Array, t) -> jax.Array:
    """a + (b - a) * clip(t, 0, 1), the official fade between two levels."""
    return a + (b - a) * jnp.clip(t, 0.0, 1.0).astype(a.dtype)


def level_lod(resolution: int, full_resolution: int) -> int:
    """The integer lod of a level: how many times the full resolution is halved to reach it."""
    return int(np.log2(full_resolution)) - int(np.log2(resolution))


def upscale_nearest(x: jax.Array, factor: int = 2) -> jax.Array:
    """Each pixel repeated `factor` x `factor` times."""
    if factor == 1:
        return x
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def downscale_box(x: jax.Array, factor: int = 2) -> jax.Array:
    """The mean of every `factor` x `factor` block."""
    if factor == 1:
        return x
    n, h, w, c = x.shape
    return jnp.mean(x.reshape(n, h // factor, factor, w // factor, factor, c), axis=(2, 4))


def blur_121(x: jax.Array) -> jax.Array:
    """The 2019 StyleGAN blur: the normalised [1, 2, 1] x [1, 2, 1] filter per channel, zero padded."""
    taps = np.array([1.0, 2.0, 1.0], np.float32) / 4
    pad = ((0, 0), (1, 1), (1, 1), (0, 0))
    y = jnp.pad(x, pad)
    h, w = x.shape[1], x.shape[2]
    y = sum(taps[i] * y[:, i:i + h] for i in range(3))
    return sum(taps[j] * y[:, :, j:j + w] for j in range(3))


def instance_norm(x: jax.Array, eps: float = 1e-8) -> jax.Array:
    """Per-sample, per-channel zero mean and unit variance over the pixels (computed in float32)."""
    y = x.astype(jnp.float32)
    y = y - jnp.mean(y, axis=(1, 2), keepdims=True)
    y = y * jax.lax.rsqrt(jnp.mean(jnp.square(y), axis=(1, 2), keepdims=True) + eps)
    return y.astype(x.dtype)


def _hwio_to_oihw(w: jax.Array) -> jax.Array:
    return jnp.transpose(w, (3, 2, 0, 1))


def conv_same(x: jax.Array, w_hwio: jax.Array) -> jax.Array:
    """Stride-1 'SAME' correlation with an odd HWIO (TensorFlow layout) kernel."""
    k = w_hwio.shape[0]
    return conv2d(x, _hwio_to_oihw(w_hwio), padding=((k // 2, k // 2), (k // 2, k // 2)))


def _box_summed(w_hwio: jax.Array) -> jax.Array:
    """The kernel one pixel larger whose taps sum each 2x2 neighbourhood of `w` (zero padded)."""
    w = jnp.pad(w_hwio, ((1, 1), (1, 1), (0, 0), (0, 0)))
    return w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]


def upscale_conv(x: jax.Array, w_hwio: jax.Array, fused: bool) -> jax.Array:
    """Nearest 2x up-scaling then a 'SAME' conv; `fused` computes the same as one transposed conv
    with the box-summed kernel (the 2019 code's form at 128 pixels and up)."""
    if not fused:
        return conv_same(upscale_nearest(x), w_hwio)
    k = w_hwio.shape[0]
    return transposed_conv2d(x, _hwio_to_oihw(_box_summed(w_hwio)), stride=2, padding=(k // 2, k // 2), groups=1,
                             flip_weight=True)


def conv_downscale(x: jax.Array, w_hwio: jax.Array, fused: bool) -> jax.Array:
    """A 'SAME' conv then 2x box down-scaling; `fused` computes the same as one stride-2 conv with
    the box-summed kernel (the 2019 code's form at 128 pixels and up)."""
    if not fused:
        return downscale_box(conv_same(x, w_hwio))
    k = w_hwio.shape[0]
    pad = ((k // 2, k // 2), (k // 2, k // 2))
    return conv2d(x, _hwio_to_oihw(_box_summed(w_hwio) * 0.25), stride=2, padding=pad)
