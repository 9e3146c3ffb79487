"""Grouped convolutions (ResNeXt-style cardinality, R3GAN's kxk convs) that differentiate fast everywhere.

On GPUs and TPUs they are XLA's grouped convolutions (`feature_group_count`) with XLA's gradients;
on CPU, `cpu_conv.grouped_conv` (XLA:CPU's own grouped weight gradient is hundreds of times slower).
"""
from __future__ import annotations

import jax

from stylegan_jax.ops import cpu_conv
from stylegan_jax.ops.conv2d import conv2d, uses_cpu_forms


def grouped_conv2d(x: jax.Array, w: jax.Array, groups: int, padding: int) -> jax.Array:
    """Correlation (like torch) of NHWC `x` with OIHW `w` [O, I / groups, k, k], zero-padded by
    `padding` on every side; output channel block j sees input channel block j only."""
    w = w.astype(x.dtype)
    if uses_cpu_forms():
        return cpu_conv.grouped_conv(x, w, groups, padding)
    return conv2d(x, w, padding=((padding, padding), (padding, padding)), groups=groups)
