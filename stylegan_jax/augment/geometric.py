"""The geometric stage: one inverse 3x3 matrix per sample, applied with a single resampling pass.

The image is reflect-padded, upsampled 2x with the sym6 low-pass filter, sampled bilinearly on the
transformed output grid and downsampled 2x again. The official padding depends on the draws; here
the pad is static (W-1 / H-1 reflected pixels per side) and everything beyond the official
(draw-dependent, clamped) pad is treated as zeros, which reproduces the official result exactly.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.augment.sampler import bilinear_patches, sample_patches
from stylegan_jax.augment.tiers import pad_tiers, tier_index
from stylegan_jax.ops import downsample2d, setup_filter, upsample2d

# Symlet-6 wavelet low-pass decomposition filter (published coefficients).
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148)
HZ_GEOM = setup_filter(SYM6)  # 12 taps, normalised to sum 1
MARGIN = 2 * (HZ_GEOM.size // 4)  # extra pixels kept around the transformed image (6)
_F32 = np.float32
_HIGHEST = jax.lax.Precision.HIGHEST


def _matmul(a, b):
    return jnp.matmul(a, b, precision=_HIGHEST)


def _homogeneous(a, b, c, d, e, f):
    """Batched 3x3 matrices [[a, b, c], [d, e, f], [0, 0, 1]] from broadcastable entries."""
    a, b, c, d, e, f = jnp.broadcast_arrays(*(jnp.asarray(v, jnp.float32) for v in (a, b, c, d, e, f)))
    zero, one = jnp.zeros_like(a), jnp.ones_like(a)
    return jnp.stack([jnp.stack([a, b, c], -1), jnp.stack([d, e, f], -1), jnp.stack([zero, zero, one], -1)], -2)


def _scaling(sx, sy):
    return _homogeneous(sx, 0, 0, 0, sy, 0)


def _translation(tx, ty):
    return _homogeneous(1, 0, tx, 0, 1, ty)


def _rotation(angle):
    """R(angle): turns the displayed content counter-clockwise when used as an inverse matrix."""
    c, s = jnp.cos(angle), jnp.sin(angle)
    return _homogeneous(c, -s, 0, s, c, 0)


def inverse_matrix(params: dict, batch: int) -> jax.Array:
    """G_inv [B, 3, 3]: output pixel -> sampled input pixel (centred pixel units), from the gated parameters."""
    one = _F32(1)
    factors = []
    if "xflip_i" in params:
        factors.append(_scaling(one / (one - _F32(2) * params["xflip_i"]), one))
    if "rotate90_k" in params:
        factors.append(_rotation(_F32(np.pi / 2) * params["rotate90_k"]))
    if "xint_shift_px" in params:
        factors.append(_translation(-params["xint_shift_px"][:, 0], -params["xint_shift_px"][:, 1]))
    if "scale_s" in params:
        factors.append(_scaling(one / params["scale_s"], one / params["scale_s"]))
    if "rotate_pre_theta" in params:
        factors.append(_rotation(params["rotate_pre_theta"]))
    if "aniso_s" in params:
        factors.append(_scaling(one / params["aniso_s"], one / (one / params["aniso_s"])))
    if "rotate_post_theta" in params:
        factors.append(_rotation(params["rotate_post_theta"]))
    if "xfrac_shift_px" in params:
        factors.append(_translation(-params["xfrac_shift_px"][:, 0], -params["xfrac_shift_px"][:, 1]))
    g_inv = jnp.broadcast_to(jnp.eye(3, dtype=jnp.float32), (batch, 3, 3))
    for factor in factors:
        g_inv = _matmul(g_inv, factor)
    return g_inv


def padding(g_inv: jax.Array, height: int, width: int) -> jax.Array:
    """Batch-wide reflect pads (left, right, top, bottom), int32, that cover every transformed corner.

    Extent beyond the image plus MARGIN, clamped to [0, W-1] / [0, H-1] and rounded up.
    """
    cx, cy = (width - 1) / 2, (height - 1) / 2
    corners = jnp.asarray([[-cx, cx, cx, -cx], [-cy, -cy, cy, cy], [1, 1, 1, 1]], jnp.float32)
    mapped = _matmul(g_inv, corners)  # [B, xyz, corner]
    x, y = mapped[:, 0, :].reshape(-1), mapped[:, 1, :].reshape(-1)
    extent = jnp.stack([jnp.max(-x), jnp.max(x), jnp.max(-y), jnp.max(y)])
    extent = extent + jnp.asarray([MARGIN - cx, MARGIN - cx, MARGIN - cy, MARGIN - cy], jnp.float32)
    limit = jnp.asarray([width - 1, width - 1, height - 1, height - 1], jnp.float32)
    return jnp.ceil(jnp.minimum(jnp.maximum(extent, 0), limit)).astype(jnp.int32)


def sampling_matrix(g_inv: jax.Array, pads: jax.Array, height: int, width: int) -> jax.Array:
    """theta [B, 2, 3]: normalised output grid -> normalised position in the padded, upsampled image."""
    left, right, top, bottom = pads[0], pads[1], pads[2], pads[3]
    half, two = _F32(0.5), _F32(2)
    up_w = (two * (width + left + right)).astype(jnp.float32)
    up_h = (two * (height + top + bottom)).astype(jnp.float32)
    m = _matmul(_translation((left - right) / two, (top - bottom) / two), g_inv)
    m = _matmul(_matmul(_scaling(two, two), m), _scaling(half, half))
    m = _matmul(_matmul(_translation(-half, -half), m), _translation(half, half))
    out_w, out_h = 2 * (width + MARGIN), 2 * (height + MARGIN)
    m = _matmul(_matmul(_scaling(two / up_w, two / up_h), m), _scaling(_F32(out_w / 2), _F32(out_h / 2)))
    return m[:, :2, :]


def _tier_resample(images: jax.Array, pads: jax.Array, corners: jax.Array, weights: jax.Array,
                   tier: tuple[int, int]) -> jax.Array:
    """Reflect-pads by the static `tier` (zeros beyond the official pads), upsamples and samples the patches."""
    _, height, width, _ = images.shape
    pad_y, pad_x = tier
    x = jnp.pad(images, ((0, 0), (pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="reflect")
    left, right, top, bottom = pads[0], pads[1], pads[2], pads[3]
    cols = jnp.arange(width + 2 * pad_x)
    rows = jnp.arange(height + 2 * pad_y)
    keep_x = (cols >= pad_x - left) & (cols < pad_x + width + right)
    keep_y = (rows >= pad_y - top) & (rows < pad_y + height + bottom)
    x = jnp.where((keep_y[:, None] & keep_x[None, :])[None, :, :, None], x, _F32(0))
    # Two more zero rows / columns per side keep every patch (corners in [-1, window]) inside the array.
    x = upsample2d(x, HZ_GEOM, up=2, padding=2)
    origin = jnp.stack([2 * (pad_y - top) + 2, 2 * (pad_x - left) + 2])
    return sample_patches(x, corners + origin, weights)


def apply_geometric(images: jax.Array, theta: jax.Array, pads: jax.Array) -> jax.Array:
    """Resamples NHWC `images` through theta (from `sampling_matrix`) with the official pads (l, r, t, b).

    Runs at the smallest static pad tier that covers the pads (`tiers.pad_tiers`); every tier gives the
    result of the official, draw-dependent pad.
    """
    _, height, width, _ = images.shape
    left, right, top, bottom = pads[0], pads[1], pads[2], pads[3]
    window = (2 * (height + top + bottom), 2 * (width + left + right))
    corners, weights = bilinear_patches(theta, window, (2 * (height + MARGIN), 2 * (width + MARGIN)))
    tiers = pad_tiers(height, width)
    branches = [functools.partial(_tier_resample, tier=tier) for tier in tiers]
    x = jax.lax.switch(tier_index(pads, tiers), branches, images, pads, corners, weights)
    return downsample2d(x, HZ_GEOM, down=2, padding=-MARGIN, flip_filter=True)
