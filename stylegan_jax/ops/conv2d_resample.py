"""2-D convolution fused with FIR up/down-sampling (StyleGAN2's resampling convs), NHWC."""
from __future__ import annotations

import jax

from stylegan_jax.ops.conv2d import conv2d, transposed_conv2d
from stylegan_jax.ops.filters import filter_size, parse_padding
from stylegan_jax.ops.upfirdn2d import upfirdn2d


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
        x = transposed_conv2d(x, w, up, (pyt, pxt), groups, flip_weight)
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
