"""2-D convolution fused with FIR up/down-sampling (StyleGAN2's resampling convs), NHWC."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from stylegan_jax.ops.filters import filter_size, parse_padding, polyphase_taps
from stylegan_jax.ops.upfirdn2d import upfirdn2d


def conv2d(x: jax.Array, w: jax.Array, stride: int = 1, padding=((0, 0), (0, 0)), groups: int = 1,
           flip_weight: bool = True) -> jax.Array:
    """Grouped conv of NHWC `x` with OIHW weights `w`; flip_weight=True correlates (like torch)."""
    if not flip_weight:
        w = jnp.flip(w, axis=(2, 3))
    return jax.lax.conv_general_dilated(
        x, w.astype(x.dtype), window_strides=(stride, stride), padding=padding,
        dimension_numbers=("NHWC", "OIHW", "NHWC"),
        feature_group_count=groups)


def _transposed_conv2d(x, w, stride, padding, groups, flip_weight):
    """Transposed (fractionally strided) grouped conv, the adjoint of a strided correlation.

    Computed polyphase: each of the stride**2 output phases is an ordinary correlation of the
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


def conv2d_resample(x: jax.Array, w: jax.Array, f=None, up: int = 1, down: int = 1, padding=0,
                    groups: int = 1, flip_weight: bool = True, flip_filter: bool = False) -> jax.Array:
    """Conv of NHWC `x` with OIHW `w`, optionally upsampling (before) and/or downsampling (after)
    with FIR filter `f`, choosing the cheapest equivalent order like the official op.

    `padding` is relative to the upsampled image; flip_weight=True correlates like torch.
    """
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d_resample expects NHWC x and OIHW w, got {x.shape} and {w.shape}")
    for name, v in (("up", up), ("down", down), ("groups", groups)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if x.shape[-1] != w.shape[1] * groups:
        raise ValueError(f"x has {x.shape[-1]} channels but w {w.shape} with groups={groups} expects "
                         f"{w.shape[1] * groups}")
    out_channels, in_per_group, kh, kw = w.shape
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = parse_padding(padding)
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return conv2d(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = conv2d(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up ** 2, flip_filter=flip_filter)
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return conv2d(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1:
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _transposed_conv2d(x, w, up, (pyt, pxt), groups, flip_weight)
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2,
                      flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return conv2d(x, w, padding=((py0, py0), (px0, px0)), groups=groups, flip_weight=flip_weight)
    x = upfirdn2d(x, None, padding=[px0, px1, py0, py1])
    x = conv2d(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x
