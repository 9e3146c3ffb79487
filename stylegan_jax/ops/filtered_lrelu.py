"""Filtered leaky ReLU of StyleGAN3: upsample, leaky ReLU at the higher rate, downsample (NHWC).

The resampling is `upfirdn2d` (polyphase shifted-slice sums whose gradient is the same kind of op;
forward and reverse mode to any order).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.ops.bias_act import bias_act
from stylegan_jax.ops.filters import filter_size, parse_padding
from stylegan_jax.ops.upfirdn2d import upfirdn2d


def _check_factor(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _check_filter(name: str, f):
    if f is None:
        return None
    f = jnp.asarray(f, jnp.float32)
    if f.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D (separable), 2-D or None, got shape {f.shape}")
    return f


def filtered_lrelu(x: jax.Array, fu=None, fd=None, b: jax.Array | None = None, up: int = 1,
                   down: int = 1, padding=0, gain: float = float(np.sqrt(2)), slope: float = 0.2,
                   clamp: float | None = None, flip_filter: bool = False) -> jax.Array:
    """Adds bias `b` to NHWC `x`, upsamples by `up` with FIR filter `fu` (zero insertion, then
    `padding` = int, [x, y] or [x0, x1, y0, y1] relative to the upsampled image, negative crops,
    then filtering with gain up**2), applies leaky ReLU with `slope`, scales by `gain`, clamps to
    [-clamp, clamp], and downsamples by `down` with FIR filter `fd`. Filters are 1-D (separable),
    2-D or None (identity); flip_filter=False convolves, True correlates. Filters are constants:
    no gradient flows to them.

    The output has (W * up + px0 + px1 - (fu_w - 1) - (fd_w - 1) + down - 1) // down columns
    (likewise rows), as the official op.
    """
    if x.ndim != 4:
        raise ValueError(f"filtered_lrelu expects NHWC images of rank 4, got shape {x.shape}")
    up = _check_factor("up", up)
    down = _check_factor("down", down)
    fu = _check_filter("fu", fu)
    fd = _check_filter("fd", fd)
    px0, px1, py0, py1 = parse_padding(padding)
    if not gain > 0:
        raise ValueError(f"gain must be positive, got {gain}")
    if not slope >= 0:
        raise ValueError(f"slope must be non-negative, got {slope}")
    fu_w, fu_h = filter_size(fu)
    fd_w, fd_h = filter_size(fd)
    width = x.shape[2] * up + px0 + px1 - (fu_w - 1) - (fd_w - 1)
    height = x.shape[1] * up + py0 + py1 - (fu_h - 1) - (fd_h - 1)
    if width < 1 or height < 1:
        raise ValueError(f"filtered_lrelu: a {x.shape[1]}x{x.shape[2]} image with up={up}, padding={padding} "
                         f"and {fu_h}x{fu_w} / {fd_h}x{fd_w} filters leaves no output pixels")

    return _filtered_lrelu(x, fu, fd, b, up=up, down=down, padding=(px0, px1, py0, py1), gain=float(gain),
                           slope=float(slope), clamp=None if clamp is None else float(clamp),
                           flip_filter=bool(flip_filter))


@functools.partial(jax.jit,
                   static_argnames=("up", "down", "padding", "gain", "slope", "clamp", "flip_filter"))
def _filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter):
    """The validated op, compiled once per configuration (eager calls would dispatch every slice)."""
    if b is not None:
        x = bias_act(x, b)
    x = upfirdn2d(x, fu, up=up, padding=padding, gain=up ** 2, flip_filter=flip_filter)
    x = bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
    return upfirdn2d(x, fd, down=down, flip_filter=flip_filter)
