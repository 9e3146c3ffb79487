"""Plain and transposed 2-D convolutions (NHWC activations, OIHW weights) with a fast gradient.

XLA:CPU computes the weight gradient of a convolution padded beyond 'same' (StyleGAN3's full
padding) as one convolution whose window is the whole image, 10-100x slower than the forward pass,
and falls behind on large 'same' convolutions too. On CPU, for those and for strided convolutions,
`conv2d` has its own VJP: the weight gradient is one matrix
product per kernel tap (input slice against output gradient), and the input gradient is an
unpadded convolution (stride 1) or the polyphase transposed convolution (stride > 1). Every step is itself differentiable, so gradients of gradients (R1, path
length) work; forward-mode differentiation (jvp) does not.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from stylegan_jax.ops.filters import polyphase_taps

_DIMENSIONS = ("NHWC", "OIHW", "NHWC")


def _xla_conv(x, w, stride, padding, groups):
    return jax.lax.conv_general_dilated(x, w, window_strides=(stride, stride), padding=padding,
                                        dimension_numbers=_DIMENSIONS, feature_group_count=groups)


def conv2d(x: jax.Array, w: jax.Array, stride: int = 1, padding=((0, 0), (0, 0)), groups: int = 1,
           flip_weight: bool = True) -> jax.Array:
    """Grouped conv of NHWC `x` with OIHW weights `w`; flip_weight=True correlates (like torch)."""
    if not flip_weight:
        w = jnp.flip(w, axis=(2, 3))
    w = w.astype(x.dtype)
    padding = tuple((int(lo), int(hi)) for lo, hi in padding)
    if groups == 1 and stride == 1 and w.shape[2:] == (1, 1) and padding == ((0, 0), (0, 0)):
        # A matrix product: XLA:CPU runs 1x1 convs (toRGB) and their gradients several times slower.
        return jnp.einsum("nhwi,oi->nhwo", x, w[:, :, 0, 0])
    if groups != 1 or min(min(p) for p in padding) < 0 or _xla_gradient_is_fast(x.shape, w.shape, stride, padding):
        return _xla_conv(x, w, stride, padding, groups)
    return _dense_conv(x, w, (int(stride), padding))


# Above about this many multiply-adds per kernel tap XLA:CPU's weight gradient of a 'same' conv
# falls behind the tap-wise one (measured: 4.1 s vs 1.3 s at 4x256x256, 128 -> 128 channels, 3x3;
# 49 vs 25 ms at 4x33x33, 512 -> 512, 1x2; XLA's 1.5-3x faster at 4x64x64, 64 -> 64, 3x3).
_LARGE_TAP_MACS = 4e8


def _xla_gradient_is_fast(x_shape, w_shape, stride, padding) -> bool:
    """Whether XLA's own gradient is as fast: always on GPU/TPU (vendor convolution kernels); on CPU
    for small unstrided convs padded at most like a 'same' conv."""
    if jax.default_backend() != "cpu":
        return True
    out_channels, in_channels, kh, kw = w_shape
    same_or_less = max(padding[0]) <= (kh - 1) // 2 and max(padding[1]) <= (kw - 1) // 2
    tap_macs = x_shape[0] * x_shape[1] * x_shape[2] * in_channels * out_channels
    return stride == 1 and same_or_less and tap_macs < _LARGE_TAP_MACS


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _dense_conv(x, w, cfg):
    stride, padding = cfg
    return _xla_conv(x, w, stride, padding, 1)


def _dense_conv_fwd(x, w, cfg):
    return _dense_conv(x, w, cfg), (x, w)


def _weight_gradient(x, dy, w_shape, stride, padding):
    """dw[o, i, a, b] = sum over n, y, x of x_padded[n, y*stride + a, x*stride + b, i] * dy[n, y, x, o]."""
    _, _, kh, kw = w_shape
    n, out_h, out_w, out_c = dy.shape
    xp = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
    accumulate = jnp.promote_types(x.dtype, jnp.float32)
    rows = []
    for a in range(kh):
        taps = []
        for b in range(kw):
            window = jax.lax.slice(xp, (0, a, b, 0),
                                   (n, a + (out_h - 1) * stride + 1, b + (out_w - 1) * stride + 1, xp.shape[3]),
                                   (1, stride, stride, 1))
            taps.append(jnp.einsum("nhwi,nhwo->oi", window, dy, preferred_element_type=accumulate))
        rows.append(jnp.stack(taps, axis=-1))
    return jnp.stack(rows, axis=-2)


def _input_gradient(dy, w, x_shape, stride, padding):
    """The adjoint of the padded, strided correlation with respect to its input."""
    (py0, _), (px0, _) = padding
    w_t = jnp.transpose(w, (1, 0, 2, 3))
    if stride == 1:
        kh, kw = w.shape[2:]
        full = conv2d(dy, jnp.flip(w_t, axis=(2, 3)), padding=((kh - 1, kh - 1), (kw - 1, kw - 1)))
    else:
        full = transposed_conv2d(dy, w_t, stride, (0, 0), 1, flip_weight=False)
    # `full` covers the padded input from its first row; rows the forward pass never read stay zero.
    h, wd = x_shape[1], x_shape[2]
    full = jnp.pad(full, ((0, 0), (0, max(py0 + h - full.shape[1], 0)), (0, max(px0 + wd - full.shape[2], 0)),
                          (0, 0)))
    return full[:, py0:py0 + h, px0:px0 + wd]


def _dense_conv_bwd(cfg, residuals, dy):
    stride, padding = cfg
    x, w = residuals
    dw = _weight_gradient(x, dy, w.shape, stride, padding).astype(w.dtype)
    return _input_gradient(dy, w, x.shape, stride, padding), dw


_dense_conv.defvjp(_dense_conv_fwd, _dense_conv_bwd)


def transposed_conv2d(x: jax.Array, w: jax.Array, stride: int, padding: tuple[int, int], groups: int,
                      flip_weight: bool) -> jax.Array:
    """Transposed (fractionally strided) grouped conv, the adjoint of a strided correlation.

    `w` is OIHW with O the output channels of this op; `padding` (rows, cols) is removed from each
    side. Computed polyphase: each of the stride**2 output phases is an ordinary correlation of the
    undilated input with every stride-th tap of the kernel, and the phases are interleaved. This
    never multiplies the inserted zeros and avoids lhs-dilated convs, which XLA compiles poorly.
    """
    if not flip_weight:
        w = jnp.flip(w, axis=(2, 3))
    n, h, wd, _ = x.shape
    kh, kw = w.shape[2], w.shape[3]
    pad_h, pad_w = kh - 1 - padding[0], kw - 1 - padding[1]
    out_h, out_w = (h - 1) * stride + 2 * pad_h - kh + 2, (wd - 1) * stride + 2 * pad_w - kw + 2
    rows_per_phase, cols_per_phase = -(-out_h // stride), -(-out_w // stride)
    phases = []
    for a in range(stride):
        first_h, offset_h = polyphase_taps(pad_h, stride, a)
        row = []
        for b in range(stride):
            first_w, offset_w = polyphase_taps(pad_w, stride, b)
            taps = w[:, :, first_h::stride, first_w::stride]
            if taps.shape[2] == 0 or taps.shape[3] == 0:
                row.append(jnp.zeros((n, rows_per_phase, cols_per_phase, w.shape[0]), x.dtype))
                continue
            window = jax.lax.pad(x, jnp.zeros((), x.dtype), (
                (0, 0, 0), (-offset_h, rows_per_phase + taps.shape[2] - 1 - h + offset_h, 0),
                (-offset_w, cols_per_phase + taps.shape[3] - 1 - wd + offset_w, 0), (0, 0, 0)))
            row.append(conv2d(window, taps, groups=groups))
        phases.append(jnp.stack(row, axis=3))  # [N, rows, cols, stride (b), C]
    y = jnp.stack(phases, axis=2)  # [N, rows, stride (a), cols, stride (b), C]
    y = y.reshape(n, rows_per_phase * stride, cols_per_phase * stride, w.shape[0])
    return y[:, :out_h, :out_w]
