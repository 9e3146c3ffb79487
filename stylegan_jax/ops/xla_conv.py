"""XLA's own convolutions (NHWC activations, OIHW weights): the forms GPUs and TPUs get, with XLA's gradients."""
from __future__ import annotations

import jax

Padding = tuple[tuple[int, int], tuple[int, int]]
DIMENSIONS = ("NHWC", "OIHW", "NHWC")


def conv(x: jax.Array, w: jax.Array, stride: int, padding: Padding, groups: int) -> jax.Array:
    """Grouped strided correlation of `x` with `w`, zero-padded by ((top, bottom), (left, right))."""
    return jax.lax.conv_general_dilated(x, w, window_strides=(stride, stride), padding=padding,
                                        dimension_numbers=DIMENSIONS, feature_group_count=groups)


def transposed_conv(x: jax.Array, w: jax.Array, stride: int, padding: tuple[int, int], groups: int) -> jax.Array:
    """The adjoint of a stride-`stride` correlation padded by (rows, cols): a correlation of the input
    dilated by `stride` (one conv, which the matrix units of GPUs and TPUs run directly)."""
    kh, kw = w.shape[2:]
    return jax.lax.conv_general_dilated(
        x, w, window_strides=(1, 1), padding=((kh - 1 - padding[0],) * 2, (kw - 1 - padding[1],) * 2),
        lhs_dilation=(stride, stride), dimension_numbers=DIMENSIONS, feature_group_count=groups)
