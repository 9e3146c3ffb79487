"""Upsample, FIR-filter and downsample NHWC images (the official `upfirdn2d` semantics)."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.ops.filters import filter_size, parse_padding, parse_scaling, polyphase_taps
from stylegan_jax.ops.precision import accumulation_dtype


def _shifted_sum(x, k, start, out_size, step=(1, 1)):
    """out[a, b] = sum_ij k[i, j] * X[start_y + a*step_y + i, start_x + b*step_x + j] for X = x
    extended by zeros, as a sum of shifted (strided) slices accumulated in at least float32."""
    n, h, w, c = x.shape
    kh, kw = k.shape
    if kh == 0 or kw == 0:
        return jnp.zeros((n,) + tuple(out_size) + (c,), x.dtype)
    ends = [start[0] + (out_size[0] - 1) * step[0] + kh - 1, start[1] + (out_size[1] - 1) * step[1] + kw - 1]
    xp = jax.lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (-start[0], ends[0] - (h - 1), 0),
                                                 (-start[1], ends[1] - (w - 1), 0), (0, 0, 0)])
    acc_dtype = accumulation_dtype(x.dtype)
    k = k.astype(acc_dtype)
    out = None
    for i in range(kh):
        for j in range(kw):
            limit = (n, i + (out_size[0] - 1) * step[0] + 1, j + (out_size[1] - 1) * step[1] + 1, c)
            term = jax.lax.slice(xp, (0, i, j, 0), limit, (1, step[0], step[1], 1)).astype(acc_dtype) * k[i, j]
            out = term if out is None else out + term
    return out.astype(x.dtype)


def _fir_pass(x, kernel, up, down, padding):
    """Zero-insertion upsampling by `up`, padding, correlation with `kernel` [kh, kw] and
    subsampling by `down`, per spatial axis.

    Built from shifted slices, which compile to fused elementwise loops on every backend
    (XLA's depthwise convolutions with input dilation are orders of magnitude slower on CPU);
    upsampling is polyphase (one sub-filter per output phase, no multiplications by inserted
    zeros). `padding` is ((y0, y1), (x0, x1)) relative to the upsampled image; negative crops.
    """
    kh, kw = kernel.shape
    pads = [padding[0][0], padding[1][0]]
    full = [x.shape[1] * up[0] + sum(padding[0]) - kh + 1, x.shape[2] * up[1] + sum(padding[1]) - kw + 1]
    if up == (1, 1):
        out_size = [(m - 1) // d + 1 for m, d in zip(full, down)]
        return _shifted_sum(x, kernel, [-p for p in pads], out_size, down)
    if down != (1, 1):
        zero_inserted = jax.lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (0, up[0] - 1, up[0] - 1),
                                                                (0, up[1] - 1, up[1] - 1), (0, 0, 0)])
        return _fir_pass(zero_inserted, kernel, (1, 1), down, padding)
    phase_size = [-(-m // u) for m, u in zip(full, up)]
    rows = []
    for ry in range(up[0]):
        cols = []
        for rx in range(up[1]):
            first_y, start_y = polyphase_taps(pads[0], up[0], ry)
            first_x, start_x = polyphase_taps(pads[1], up[1], rx)
            cols.append(_shifted_sum(x, kernel[first_y::up[0], first_x::up[1]], [start_y, start_x], phase_size))
        rows.append(jnp.stack(cols))
    phases = jnp.stack(rows)  # [up_y, up_x, N, Hp, Wp, C]
    n, c = x.shape[0], x.shape[3]
    y = jnp.transpose(phases, (2, 3, 0, 4, 1, 5)).reshape(n, phase_size[0] * up[0], phase_size[1] * up[1], c)
    return y[:, :full[0], :full[1], :]


def _upfirdn2d_forward(x, f, cfg):
    (upx, upy), (downx, downy), (px0, px1, py0, py1), flip_filter, gain = cfg
    if not flip_filter:
        f = jnp.flip(f, axis=tuple(range(f.ndim)))
    f = f * np.float32(gain ** (f.ndim / 2))
    if f.ndim == 2:
        return _fir_pass(x, f, (upy, upx), (downy, downx), ((py0, py1), (px0, px1)))
    x = _fir_pass(x, f[None, :], (1, upx), (1, downx), ((0, 0), (px0, px1)))
    return _fir_pass(x, f[:, None], (upy, 1), (downy, 1), ((py0, py1), (0, 0)))


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _upfirdn2d(x, f, cfg):
    return _upfirdn2d_forward(x, f, cfg)


def _adjoint_config(cfg, f, x_shape, y_shape):
    """The configuration of the adjoint upfirdn2d: the filter flipped, up and down swapped."""
    (upx, upy), (downx, downy), (px0, px1, py0, py1), flip_filter, gain = cfg
    fw, fh = filter_size(f)
    ih, iw, oh, ow = x_shape[1], x_shape[2], y_shape[1], y_shape[2]
    padding = (fw - px0 - 1, iw * upx - ow * downx + px0 - upx + 1,
               fh - py0 - 1, ih * upy - oh * downy + py0 - upy + 1)
    return (downx, downy), (upx, upy), padding, not flip_filter, gain


@_upfirdn2d.defjvp
def _upfirdn2d_jvp(cfg, primals, tangents):
    # Linear in x; the filter is a constant. The tangent is the transpose of the adjoint upfirdn2d, so
    # reverse mode, which transposes the tangent, runs the adjoint as the same kind of op (shifted
    # slices): the gradient costs what the forward pass costs, and is differentiable again.
    (x, f), (dx, _) = primals, tangents
    y = _upfirdn2d_forward(x, f, cfg)
    adjoint = functools.partial(_upfirdn2d_forward, f=f, cfg=_adjoint_config(cfg, f, x.shape, y.shape))
    (dy,) = jax.linear_transpose(adjoint, jax.ShapeDtypeStruct(y.shape, dx.dtype))(dx)
    return y, dy


def upfirdn2d(x: jax.Array, f, up=1, down=1, padding=0, flip_filter: bool = False,
              gain: float = 1.0) -> jax.Array:
    """Zero-insertion upsampling by `up`, zero padding (negative crops), FIR filtering, and
    keeping every `down`-th pixel, for NHWC images.

    `f` is a 1-D separable filter, a 2-D filter or None (identity), treated as a constant (no
    gradient flows into it); `padding` is an int, [x, y] or [x0, x1, y0, y1] relative to the
    upsampled image; `flip_filter=False` convolves, True correlates; `gain` scales the output.
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
    return _upfirdn2d(x, f, ((upx, upy), (downx, downy), (px0, px1, py0, py1), bool(flip_filter), float(gain)))


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
