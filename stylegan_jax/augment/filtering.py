"""Image-space stages: the 4-band amplification filter, additive noise and cutout."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_F32 = np.float32


def _db2() -> np.ndarray:
    """Daubechies-2 (= symlet-2) low-pass decomposition filter, in closed form."""
    r3 = np.sqrt(3.0)
    return np.asarray([1 - r3, 3 - r3, 3 + r3, 1 + r3]) / (4 * np.sqrt(2.0))


def _dilate(taps: np.ndarray) -> np.ndarray:
    """Inserts one zero between consecutive taps."""
    out = np.zeros(2 * taps.size - 1)
    out[::2] = taps
    return out


def filter_bank(levels: int = 3) -> np.ndarray:
    """[levels + 1, 6 * 2**levels - 5] band filters: band 0 the low-pass, band j the j-th octave's high-pass.

    Each level dilates every band by 2 and low-passes it with H(z)H(1/z)/2; band `level` then gains
    the high-pass H(-z)H(-1/z)/2, centred (H = db2).
    """
    lo = _db2()
    hi = lo * (-1.0) ** np.arange(lo.size)
    lo2, hi2 = np.convolve(lo, lo[::-1]) / 2, np.convolve(hi, hi[::-1]) / 2
    bands = [np.ones(1)] + [np.zeros(1)] * levels
    for level in range(1, levels + 1):
        bands = [np.convolve(_dilate(b), lo2) for b in bands]
        start = (bands[level].size - hi2.size) // 2
        bands[level][start:start + hi2.size] += hi2
    return np.stack(bands)


HZ_FBANK = filter_bank().astype(np.float32)  # [4, 43]
EXPECTED_POWER = np.asarray([10, 1, 1, 1], np.float32) / _F32(13)  # assumed 1/f power per band


def combined_gain(gains: jax.Array) -> jax.Array:
    """[B, 4] overall band gains: the product over bands j of (band j amplified by gains[:, j], power-normalised)."""
    batch, bands = gains.shape
    total = jnp.ones((batch, bands), jnp.float32)
    for j in range(bands):
        t = jnp.ones((batch, bands), jnp.float32).at[:, j].set(gains[:, j])
        t = t / jnp.sqrt(jnp.sum(EXPECTED_POWER * jnp.square(t), axis=-1, keepdims=True))
        total = total * t
    return total


def filter_taps(gain: jax.Array) -> jax.Array:
    """[B, 43] symmetric filter taps from the overall band gains [B, 4]."""
    return jnp.matmul(gain, HZ_FBANK, precision=jax.lax.Precision.HIGHEST)


def _band_matrix(taps: jax.Array, size: int) -> jax.Array:
    """[B, size, size + K - 1] matrices whose product with a K-1 padded signal is its valid correlation with taps [B, K]."""
    k = taps.shape[1]
    offset = np.arange(size + k - 1)[None, :] - np.arange(size)[:, None]
    inside = (offset >= 0) & (offset < k)
    return jnp.where(inside, taps[:, np.clip(offset, 0, k - 1)], _F32(0))


def apply_filter(images: jax.Array, taps: jax.Array) -> jax.Array:
    """Filters NHWC images with the per-sample separable taps (reflect-padded, same size).

    Each 1-D pass is a batched product with a banded matrix: fast to compile and to differentiate.
    """
    _, height, width, _ = images.shape
    half = taps.shape[1] // 2
    x = jnp.pad(images, ((0, 0), (half, half), (half, half), (0, 0)), mode="reflect")
    highest = jax.lax.Precision.HIGHEST
    x = jnp.einsum("bwj,bhjc->bhwc", _band_matrix(taps, width), x, precision=highest)
    return jnp.einsum("bhi,biwc->bhwc", _band_matrix(taps, height), x, precision=highest)


def add_noise(images: jax.Array, field: jax.Array, sigma: jax.Array) -> jax.Array:
    """images + field * sigma[b] (field NHWC)."""
    return images + field * sigma[:, None, None, None]


def cutout(images: jax.Array, size: jax.Array, center: jax.Array) -> jax.Array:
    """Zeroes a size x size (relative) square centred at center[b] = (c_x, c_y); size 0 keeps everything."""
    _, height, width, _ = images.shape
    x = (jnp.arange(width, dtype=jnp.float32) + _F32(0.5)) / _F32(width)
    y = (jnp.arange(height, dtype=jnp.float32) + _F32(0.5)) / _F32(height)
    half = (size / _F32(2))[:, None, None]
    cx, cy = center[:, 0, None, None], center[:, 1, None, None]
    keep = (jnp.abs(x[None, None, :] - cx) >= half) | (jnp.abs(y[None, :, None] - cy) >= half)
    return images * keep[..., None].astype(images.dtype)
