"""DiffAugment (Zhao et al. 2020) as Projected GAN and StyleGAN-XL apply it: colour, translation, cutout.

Drawing the per-sample parameters (`draw`) is separate from applying them (`apply`), so a test can
apply parameters given from outside. Images are NHWC floats in [-1, 1]; everything is jit- and
vmap-safe and differentiable with respect to the images.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

POLICIES = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.2


class DiffAugmentDraws(NamedTuple):
    """Per-sample parameters: colour factors [N], integer shifts and cutout centres [N, 2] (rows, columns)."""

    brightness: jax.Array
    saturation: jax.Array
    contrast: jax.Array
    shift: jax.Array
    cutout_center: jax.Array


def _half_up(size: int, ratio: float) -> int:
    return int(size * ratio + 0.5)


def draw(key: jax.Array, batch: int, height: int, width: int) -> DiffAugmentDraws:
    """The official distributions: brightness U[-0.5, 0.5), saturation U[0, 2), contrast U[0.5, 1.5),
    shifts uniform in [-s, s] with s = round(0.125 * size), cutout centres uniform as the official."""
    k = jax.random.split(key, 5)
    u = lambda i: jax.random.uniform(k[i], (batch,))
    shift_h, shift_w = _half_up(height, TRANSLATION_RATIO), _half_up(width, TRANSLATION_RATIO)
    shift = jnp.stack([jax.random.randint(jax.random.fold_in(k[3], 0), (batch,), -shift_h, shift_h + 1),
                       jax.random.randint(jax.random.fold_in(k[3], 1), (batch,), -shift_w, shift_w + 1)], axis=1)
    cut_h, cut_w = _half_up(height, CUTOUT_RATIO), _half_up(width, CUTOUT_RATIO)
    center = jnp.stack([jax.random.randint(jax.random.fold_in(k[4], 0), (batch,), 0, height + 1 - cut_h % 2),
                        jax.random.randint(jax.random.fold_in(k[4], 1), (batch,), 0, width + 1 - cut_w % 2)], axis=1)
    return DiffAugmentDraws(u(0) - 0.5, u(1) * 2, u(2) + 0.5, shift, center)


def _per_sample(v: jax.Array) -> jax.Array:
    return v[:, None, None, None]


def color(x: jax.Array, d: DiffAugmentDraws) -> jax.Array:
    """Brightness offset, then saturation and contrast scaled about the pixel and image means."""
    x = x + _per_sample(d.brightness)
    mean_c = jnp.mean(x, axis=3, keepdims=True)
    x = (x - mean_c) * _per_sample(d.saturation) + mean_c
    mean_all = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
    return (x - mean_all) * _per_sample(d.contrast) + mean_all


def translation(x: jax.Array, d: DiffAugmentDraws) -> jax.Array:
    """Integer shift per sample; pixels shifted in from outside are zero (one pixel of zero padding, clamped)."""
    n, h, w, _ = x.shape
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    rows = jnp.clip(jnp.arange(h)[None, :] + d.shift[:, :1] + 1, 0, h + 1)  # [N, H]
    cols = jnp.clip(jnp.arange(w)[None, :] + d.shift[:, 1:] + 1, 0, w + 1)  # [N, W]
    gather = lambda img, r, c: img[r][:, c]
    return jax.vmap(gather)(padded, rows, cols)


def cutout(x: jax.Array, d: DiffAugmentDraws) -> jax.Array:
    """Zeroes a (0.2 H) x (0.2 W) rectangle per sample, centred at the drawn point and clipped to the image."""
    _, h, w, _ = x.shape
    sizes = (_half_up(h, CUTOUT_RATIO), _half_up(w, CUTOUT_RATIO))
    inside = []
    for axis, (size, length) in enumerate(zip(sizes, (h, w))):
        start = d.cutout_center[:, axis:axis + 1] - size // 2
        pos = jnp.arange(length)[None, :]
        inside.append((pos >= start) & (pos <= start + size - 1))
    mask = ~(inside[0][:, :, None] & inside[1][:, None, :])
    return x * mask[..., None].astype(x.dtype)


_TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout}


def apply(x: jax.Array, d: DiffAugmentDraws, policy: tuple[str, ...] = POLICIES) -> jax.Array:
    """The policy's transforms in the official order (colour, translation, cutout)."""
    unknown = [p for p in policy if p not in _TRANSFORMS]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {unknown}; choose from {POLICIES}")
    for name in POLICIES:
        if name in policy:
            x = _TRANSFORMS[name](x, d)
    return x
