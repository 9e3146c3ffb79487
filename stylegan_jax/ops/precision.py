"""Arithmetic of low-precision (bfloat16) blocks whose parameter gradients must sum in float32.

A per-channel parameter broadcast over a bfloat16 activation map (a bias, a style, a demodulation
factor, a learned constant) gets as gradient the sum of the map's cotangents. XLA sums in the operand's
dtype, and a bfloat16 sum over a 16x16x32 map lost 2-7% of the gradient, not the 0.2% of one rounding
(`tests/test_precision.py`). The official fp16 layers sum in float32 (CUDA reductions and the bias_act
kernel accumulate in float), so these helpers compute in at least float32 and return the input's dtype.
XLA fuses the casts into the elementwise pass: activations stay low-precision in memory.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def accumulation_dtype(dtype) -> jnp.dtype:
    """The dtype to compute in for activations of `dtype`: float32, or `dtype` when wider (float64)."""
    return jnp.promote_types(dtype, jnp.float32)


def scale_channels(x: jax.Array, scale: jax.Array) -> jax.Array:
    """NHWC `x` times `scale` [C] or per sample [N, C], computed in float32, returned in x's dtype."""
    wide = accumulation_dtype(x.dtype)
    factors = scale.astype(wide)
    factors = factors[:, None, None, :] if factors.ndim == 2 else factors
    return (x.astype(wide) * factors).astype(x.dtype)
