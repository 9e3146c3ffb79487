"""Upsample, FIR-filter and downsample NHWC images (the official `upfirdn2d` semantics)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.ops.filters import filter_size, parse_padding, parse_scaling


def _depthwise_pass(x, kernel, up, down, padding):
    """One depthwise convolution: zero-insertion `up` and stride `down` per spatial axis.

    `kernel` is [kh, kw] (already oriented for correlation); `padding` is ((y0, y1), (x0, x1))
    relative to the upsampled image, negative values cropping.
    """
    channels = x.shape[-1]
    k = jnp.broadcast_to(kernel.astype(x.dtype)[:, :, None, None], kernel.shape + (1, channels))
    pad = [(lo, hi + u - 1) for (lo, hi), u in zip(padding, up)]
    return jax.lax.conv_general_dilated(
        x, k, window_strides=down, padding=pad, lhs_dilation=up,
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=channels)


def upfirdn2d(x: jax.Array, f, up=1, down=1, padding=0, flip_filter: bool = False,
              gain: float = 1.0) -> jax.Array:
    """Zero-insertion upsampling by `up`, zero padding (negative crops), FIR filtering, and
    keeping every `down`-th pixel, for NHWC images.

    `f` is a 1-D separable filter, a 2-D filter or None (identity); `padding` is an int, [x, y]
    or [x0, x1, y0, y1] relative to the upsampled image; `flip_filter=False` convolves,
    True correlates; `gain` scales the output.
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects NHWC images of rank 4, got shape {x.shape}")
    f = jnp.ones([1, 1], jnp.float32) if f is None else jnp.asarray(f, jnp.float32)
    fw, fh = filter_size(f)
    upx, upy = parse_scaling(up)
    downx, downy = parse_scaling(down)
    px0, px1, py0, py1 = parse_padding(padding)
    up_w = x.shape[2] * upx + px0 + px1
    up_h = x.shape[1] * upy + py0 + py1
    if up_w < fw or up_h < fh:
        raise ValueError(
            f"image of {x.shape[1]}x{x.shape[2]} pixels (after up={up} and padding={padding}: "
            f"{up_h}x{up_w}) is smaller than the {fh}x{fw} filter")
    if not flip_filter:
        f = jnp.flip(f, axis=tuple(range(f.ndim)))
    f = f * np.float32(gain ** (f.ndim / 2))
    if f.ndim == 2:
        return _depthwise_pass(x, f, (upy, upx), (downy, downx), ((py0, py1), (px0, px1)))
    x = _depthwise_pass(x, f[None, :], (1, upx), (1, downx), ((0, 0), (px0, px1)))
    return _depthwise_pass(x, f[:, None], (upy, 1), (downy, 1), ((py0, py1), (0, 0)))


def filter2d(x: jax.Array, f, padding=0, flip_filter: bool = False, gain: float = 1.0) -> jax.Array:
    """FIR-filters NHWC images keeping their size; `padding` is added on top (relative to the output)."""
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(jnp.asarray(f))
    pad = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=pad, flip_filter=flip_filter, gain=gain)


def upsample2d(x: jax.Array, f, up=2, padding=0, flip_filter: bool = False,
               gain: float = 1.0) -> jax.Array:
    """Upsamples NHWC images by `up` with FIR filter `f`, output size a multiple of the input."""
    upx, upy = parse_scaling(up)
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(jnp.asarray(f))
    pad = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2,
           py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=up, padding=pad, flip_filter=flip_filter, gain=gain * upx * upy)


def downsample2d(x: jax.Array, f, down=2, padding=0, flip_filter: bool = False,
                 gain: float = 1.0) -> jax.Array:
    """Downsamples NHWC images by `down` with FIR filter `f`, output size a fraction of the input."""
    downx, downy = parse_scaling(down)
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(jnp.asarray(f))
    pad = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2,
           py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter, gain=gain)
