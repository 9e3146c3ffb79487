"""The convolutions as the CPU backend gets them: rewrites of what XLA:CPU runs slowly, each measured faster there.

- 1x1 convolutions are matrix products, or unrolled multiply-adds over few channels;
- unpadded convolutions get one padding column, cropped from the output;
- strided convolutions are sums of unstrided ones over the input phases (polyphase);
- transposed convolutions are polyphase too (each output phase an ordinary conv of the undilated
  input; XLA:CPU runs input-dilated convs poorly), with few output channels all phases as one conv;
- unstrided convolutions padded beyond 'same' (StyleGAN3's full padding), or large ones, get a weight
  gradient of one matrix product per kernel tap: XLA:CPU computes it as one convolution whose window
  is the whole image, 10-100x slower than the forward pass.
- grouped convolutions (R3GAN) differentiate as per-group channel products per kernel tap, to any order.
The custom derivatives are JVP rules whose tangents are linear maps written so that JAX's transposes
of them are the fast backward forms: forward mode (jvp) and reverse mode, to any order, both work.
`conv2d.uses_cpu_forms` decides where these forms are used; accelerators keep `xla_conv`'s.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from stylegan_jax.ops import xla_conv
from stylegan_jax.ops.filters import polyphase_taps
from stylegan_jax.ops.xla_conv import Padding


def conv(x: jax.Array, w: jax.Array, stride: int, padding: Padding, groups: int) -> jax.Array:
    """`xla_conv.conv`, computed in XLA:CPU's fast forms."""
    if groups == 1 and stride == 1 and w.shape[2:] == (1, 1) and padding == ((0, 0), (0, 0)):
        # A matrix product: XLA:CPU runs 1x1 convs (toRGB) and their gradients several times slower.
        return _pointwise_conv(x, w[:, :, 0, 0])
    if min(min(p) for p in padding) < 0:
        return _padded_conv(x, w, stride, padding, groups)
    if stride > 1:
        return _polyphase_strided_conv(x, w, stride, padding, groups)
    if groups != 1 or _xla_gradient_is_fast(x.shape, w.shape, padding):
        return _padded_conv(x, w, 1, padding, groups)
    return _tapwise_conv(x, w, padding)


def _padded_conv(x, w, stride, padding, groups):
    # XLA:CPU runs an unpadded conv up to 3x slower than a padded one (measured: 147 vs 50 ms at
    # 4x33x33, 512 -> 512 channels, 2x2), so it gets one zero column, cropped from the output.
    if stride == 1 and padding == ((0, 0), (0, 0)) and w.shape[2] * w.shape[3] > 1:
        return xla_conv.conv(x, w, 1, ((0, 0), (0, 1)), groups)[:, :, :-1]
    return xla_conv.conv(x, w, stride, padding, groups)


def _is_zero(tangent) -> bool:
    return isinstance(tangent, SymbolicZero)


def _sum_tangents(terms: list[jax.Array], like: jax.Array) -> jax.Array:
    return functools.reduce(jnp.add, terms) if terms else jnp.zeros_like(like)


# Matrix products contracting at most this many channels run as unrolled multiply-adds, which fuse
# with their neighbours: a dot contracting 3 channels (fromRGB, toRGB's input gradient) ran 2.4 ms
# at 4x256x256 -> 8 channels, the unrolled sum 0.19 ms; with toRGB's 8 input channels unrolled too,
# the 256x256 StyleGAN2 generator's fwd+bwd ran 1.5-2 ms faster (in-process A/B, twice).
_UNROLLED_CHANNELS = 8


def _channel_product(x: jax.Array, w: jax.Array) -> jax.Array:
    """y[..., o] = sum over i of x[..., i] * w[o, i]: unrolled over few input channels, else a matrix product."""
    if x.shape[-1] > _UNROLLED_CHANNELS:
        return jnp.einsum("nhwi,oi->nhwo", x, w)
    y = x[..., :1] * w[:, 0]
    for i in range(1, x.shape[-1]):
        y = y + x[..., i:i + 1] * w[:, i]
    return y


def _transposes_to_channel_product(dx: jax.Array, w: jax.Array) -> jax.Array:
    """_channel_product(dx, w) written so that its transpose in dx is _channel_product(dy, w.T): one
    sum over the input channels per output channel when there are few outputs, else a matrix product."""
    if w.shape[0] > _UNROLLED_CHANNELS:
        return jnp.einsum("nhwi,oi->nhwo", dx, w)
    return jnp.concatenate([jnp.sum(dx * w[o], axis=-1, keepdims=True) for o in range(w.shape[0])], axis=-1)


@jax.custom_jvp
def _pointwise_conv(x: jax.Array, w: jax.Array) -> jax.Array:
    """1x1 convolution of NHWC `x` with [O, I] weights `w`."""
    return _channel_product(x, w)


def _pointwise_conv_jvp(primals, tangents):
    (x, w), (dx, dw) = primals, tangents
    y = _channel_product(x, w)
    terms = [] if _is_zero(dx) else [_transposes_to_channel_product(dx, w)]
    if not _is_zero(dw):
        terms.append(jnp.einsum("nhwi,oi->nhwo", x, dw))  # its transpose: the weight gradient, one matrix product
    return y, _sum_tangents(terms, y)


_pointwise_conv.defjvp(_pointwise_conv_jvp, symbolic_zeros=True)


def _polyphase_strided_conv(x, w, stride, padding, groups):
    """A strided correlation as the sum of stride**2 unstrided ones, one per input phase with the
    matching every-stride-th taps (XLA:CPU runs strided convs at well under half its usual rate)."""
    x = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
    n, h, wd, c = x.shape
    kh, kw = w.shape[2:]
    out_h, out_w = (h - kh) // stride + 1, (wd - kw) // stride + 1
    y = None
    for r in range(min(stride, kh)):
        for s in range(min(stride, kw)):
            taps = w[:, :, r::stride, s::stride]
            rows, cols = out_h + taps.shape[2] - 1, out_w + taps.shape[3] - 1
            phase = jax.lax.slice(x, (0, r, s, 0), (n, r + (rows - 1) * stride + 1, s + (cols - 1) * stride + 1, c),
                                  (1, stride, stride, 1))
            term = conv(phase, taps, 1, ((0, 0), (0, 0)), groups)
            y = term if y is None else y + term
    return y


# Above about this many multiply-adds per kernel tap XLA:CPU's weight gradient of a 'same' conv
# falls behind the tap-wise one (measured: 4.1 s vs 1.3 s at 4x256x256, 128 -> 128 channels, 3x3;
# 49 vs 25 ms at 4x33x33, 512 -> 512, 1x2; XLA's 1.5-3x faster at 4x64x64, 64 -> 64, 3x3).
_LARGE_TAP_MACS = 4e8


def _xla_gradient_is_fast(x_shape, w_shape, padding) -> bool:
    """Whether XLA:CPU's own gradient of an unstrided conv is as fast: small, padded at most like 'same'."""
    out_channels, in_channels, kh, kw = w_shape
    same_or_less = max(padding[0]) <= (kh - 1) // 2 and max(padding[1]) <= (kw - 1) // 2
    tap_macs = x_shape[0] * x_shape[1] * x_shape[2] * in_channels * out_channels
    return same_or_less and tap_macs < _LARGE_TAP_MACS


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _tapwise_conv(x, w, padding):
    return _padded_conv(x, w, 1, padding, 1)


def _input_tangent(dx, w, padding):
    """The conv of `dx` with at most 'same' padding inside the conv, the rest padded beforehand: its
    transpose in dx, the input gradient, is then a padded conv too, never XLA:CPU's slow unpadded one."""
    same = ((w.shape[2] - 1) // 2, (w.shape[3] - 1) // 2)
    inner = tuple((min(lo, s), min(hi, s)) for (lo, hi), s in zip(padding, same))
    outer = tuple((lo - a, hi - b) for (lo, hi), (a, b) in zip(padding, inner))
    return _padded_conv(jnp.pad(dx, ((0, 0), *outer, (0, 0))), w, 1, inner, 1)


def _weight_tangent(x, dw, padding, out_shape):
    """The conv of `x` with `dw` as one matrix product per kernel tap: its transpose in dw, the weight
    gradient, is dw[o, i, a, b] = sum over n, y, x of x_padded[n, y + a, x + b, i] * dy[n, y, x, o]."""
    _, out_h, out_w, _ = out_shape
    xp = jnp.pad(x, ((0, 0), *padding, (0, 0)))
    terms = [jnp.einsum("nhwi,oi->nhwo", xp[:, a:a + out_h, b:b + out_w], dw[:, :, a, b])
             for a in range(dw.shape[2]) for b in range(dw.shape[3])]
    return functools.reduce(jnp.add, terms)


def _tapwise_conv_jvp(padding, primals, tangents):
    (x, w), (dx, dw) = primals, tangents
    y = _padded_conv(x, w, 1, padding, 1)
    terms = [] if _is_zero(dx) else [_input_tangent(dx, w, padding)]
    if not _is_zero(dw):
        terms.append(_weight_tangent(x, dw, padding, y.shape))
    return y, _sum_tangents(terms, y)


_tapwise_conv.defjvp(_tapwise_conv_jvp, symbolic_zeros=True)


# Up to this many groups, a grouped conv runs as one dense conv with a block-diagonal weight: XLA:CPU's
# grouped forward is slow at any grouping (measured at 32x32x32, 128 channels in 8 groups, 3x3: 179 ms
# grouped, 56 ms dense at 8x the FLOPs; R1's second-order gradient 456 vs 261 ms; equal at 8x8), while
# at 96 groups the dense FLOPs cost more than they save (merging groups only part-way never helped).
_DENSE_GROUPS = 8


def grouped_conv(x: jax.Array, w: jax.Array, groups: int, padding: int) -> jax.Array:
    """An unstrided grouped convolution (ResNeXt cardinality: R3GAN's 3x3 convs), `padding` on every side:
    a dense conv of the block-diagonal weight for few groups, else XLA's with per-tap derivatives."""
    if groups <= _DENSE_GROUPS:
        return conv(x, block_diagonal(w, groups), 1, ((padding, padding), (padding, padding)), 1)
    return _many_groups_conv(x, w, groups, padding)


def block_diagonal(w: jax.Array, groups: int) -> jax.Array:
    """The dense OIHW weight [O, I, k, k] of a grouped one [O, I / groups, k, k]: zero between groups."""
    out_channels, in_per_group = w.shape[:2]
    blocks = w.reshape(groups, out_channels // groups, in_per_group, *w.shape[2:])
    dense = jnp.einsum("goikl,gh->gohikl", blocks, jnp.eye(groups, dtype=w.dtype))
    return dense.reshape(out_channels, groups * in_per_group, *w.shape[2:])


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _many_groups_conv(x: jax.Array, w: jax.Array, groups: int, padding: int) -> jax.Array:
    """A grouped conv by XLA, differentiated as per-group channel products per kernel tap.

    XLA:CPU computes the weight gradient of a grouped conv far slower than the conv itself (measured
    at 1x16x16, 1536 channels in 96 groups, 3x3: 95 ms forward, 218 ms input gradient, 55.5 s weight
    gradient). The forward pass is XLA's; the derivatives are per-group channel products per kernel
    tap, and so are their own derivatives (R1 and R2 differentiate the input gradient by the weights).
    """
    return _padded_conv(x, w, 1, ((padding, padding), (padding, padding)), groups)


def _grouped_tap_products(x, w, groups, padding, out_hw):
    """The grouped convolution as a sum over kernel taps of per-group channel products of the shifted
    padded input: linear in x and in w, with transposes of the same form (no XLA:CPU weight gradient)."""
    out_channels, in_per_group, kh, kw = w.shape
    out_h, out_w = out_hw
    xp = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    xp = xp.reshape(*xp.shape[:3], groups, in_per_group)
    wg = w.reshape(groups, out_channels // groups, in_per_group, kh, kw)
    terms = [jnp.einsum("nhwgi,goi->nhwgo", xp[:, a:a + out_h, b:b + out_w], wg[..., a, b])
             for a in range(kh) for b in range(kw)]
    return functools.reduce(jnp.add, terms).reshape(x.shape[0], out_h, out_w, out_channels)


def _grouped_conv_jvp(groups, padding, primals, tangents):
    (x, w), (dx, dw) = primals, tangents
    y = _many_groups_conv(x, w, groups, padding)
    terms = [] if _is_zero(dx) else [_grouped_tap_products(dx, w, groups, padding, y.shape[1:3])]
    if not _is_zero(dw):
        terms.append(_grouped_tap_products(x, dw, groups, padding, y.shape[1:3]))
    return y, _sum_tangents(terms, y)


_many_groups_conv.defjvp(_grouped_conv_jvp, symbolic_zeros=True)


# A transposed conv whose stacked phases have at most this many output channels (stride**2 times
# its own) runs as one convolution: measured fwd+bwd of StyleGAN2's up-conv layer 26 vs 37 ms at
# 4x128x128, 16 -> 8 channels; 10.5 vs 12.3 ms at 64x64, 32 -> 16; even at 32x32, 64 -> 32; and
# slower beyond (6.8 vs 5.9 ms at 16x16, 64 -> 64), where the zero taps it multiplies cost more.
_STACKED_PHASE_CHANNELS = 64


def transposed_conv(x: jax.Array, w: jax.Array, stride: int, padding: tuple[int, int], groups: int) -> jax.Array:
    """`xla_conv.transposed_conv` computed polyphase: each of the stride**2 output phases is an
    ordinary correlation of the undilated input with every stride-th tap of the kernel, and the
    phases are interleaved, never multiplying the inserted zeros."""
    n, h, wd, _ = x.shape
    kh, kw = w.shape[2], w.shape[3]
    pad_h, pad_w = kh - 1 - padding[0], kw - 1 - padding[1]
    out_h, out_w = (h - 1) * stride + 2 * pad_h - kh + 2, (wd - 1) * stride + 2 * pad_w - kw + 2
    rows, cols = -(-out_h // stride), -(-out_w // stride)
    taps_h, start_h = _phase_taps(kh, pad_h, stride)
    taps_w, start_w = _phase_taps(kw, pad_w, stride)
    if groups == 1 and stride * stride * w.shape[0] <= _STACKED_PHASE_CHANNELS:
        y = _stacked_phases(x, w, stride, taps_h, start_h, taps_w, start_w, rows, cols)
    else:
        y = _separate_phases(x, w, stride, groups, taps_h, start_h, taps_w, start_w, rows, cols)
    y = y.reshape(n, rows * stride, cols * stride, w.shape[0])
    return y[:, :out_h, :out_w]


def _phase_taps(k: int, pad: int, stride: int) -> tuple[np.ndarray, int]:
    """For each output phase of a stride-`stride` transposed conv along one axis (kernel size k,
    `pad` in front of the dilated input), the kernel tap applied at each position of a common input
    window, or k where that phase has no tap, as a [stride, window] array; and the window's offset."""
    plans = []
    for phase in range(stride):
        first, offset = polyphase_taps(pad, stride, phase)
        plans.append((list(range(first, k, stride)), offset))
    start = min(offset for taps, offset in plans if taps)
    length = max(offset + len(taps) for taps, offset in plans if taps) - start
    table = np.full((stride, length), k)
    for phase, (taps, offset) in enumerate(plans):
        table[phase, offset - start:offset - start + len(taps)] = taps
    return table, start


def _window(x, start: tuple[int, int], size: tuple[int, int]):
    """Rows and columns [start, start + size) of NHWC `x`, zeros outside it (start may be negative)."""
    return jax.lax.pad(x, jnp.zeros((), x.dtype), (
        (0, 0, 0), (-start[0], start[0] + size[0] - x.shape[1], 0),
        (-start[1], start[1] + size[1] - x.shape[2], 0), (0, 0, 0)))


def _stacked_phases(x, w, stride, taps_h, start_h, taps_w, start_w, rows, cols):
    """All output phases as one correlation whose output channels are (phase row, phase column,
    channel): each phase's taps sit at their input offsets in a common window, zeros elsewhere."""
    n = x.shape[0]
    out_channels, in_channels = w.shape[:2]
    w = jnp.pad(w, ((0, 0), (0, 0), (0, 1), (0, 1)))  # tap index k selects a zero
    stacked = jnp.take(jnp.take(w, taps_h, axis=2), taps_w, axis=4)  # [O, I, s, len_h, s, len_w]
    stacked = jnp.transpose(stacked, (2, 4, 0, 1, 3, 5)).reshape(
        stride * stride * out_channels, in_channels, taps_h.shape[1], taps_w.shape[1])
    window = _window(x, (start_h, start_w), (rows + taps_h.shape[1] - 1, cols + taps_w.shape[1] - 1))
    y = conv(window, stacked, 1, ((0, 0), (0, 0)), 1).reshape(n, rows, cols, stride, stride, out_channels)
    return jnp.transpose(y, (0, 1, 3, 2, 4, 5))


def _separate_phases(x, w, stride, groups, taps_h, start_h, taps_w, start_w, rows, cols):
    """Each output phase as its own correlation of the undilated input with that phase's taps."""
    n = x.shape[0]
    kh, kw = w.shape[2:]
    phases = []
    for a in range(stride):
        row = []
        for b in range(stride):
            used_h, used_w = np.flatnonzero(taps_h[a] < kh), np.flatnonzero(taps_w[b] < kw)
            if used_h.size == 0 or used_w.size == 0:
                row.append(jnp.zeros((n, rows, cols, w.shape[0]), x.dtype))
                continue
            taps = w[:, :, taps_h[a, used_h]][:, :, :, taps_w[b, used_w]]
            window = _window(x, (start_h + int(used_h[0]), start_w + int(used_w[0])),
                             (rows + taps.shape[2] - 1, cols + taps.shape[3] - 1))
            row.append(conv(window, taps, 1, ((0, 0), (0, 0)), groups))
        phases.append(jnp.stack(row, axis=3))  # [N, rows, cols, stride (b), C]
    return jnp.stack(phases, axis=2)  # [N, rows, stride (a), cols, stride (b), C]
