"""StyleGAN2's modulated convolution (modulation, demodulation, noise), fused or not, NHWC."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.ops.conv2d_resample import conv2d_resample
from stylegan_jax.ops.modulated_conv2d_sg3 import demodulation
from stylegan_jax.ops.precision import scale_channels


def modulated_conv2d(x: jax.Array, weight: jax.Array, styles: jax.Array, noise: jax.Array | None = None,
                     up: int = 1, down: int = 1, padding=0, resample_filter=None,
                     demodulate: bool = True, flip_weight: bool = True,
                     fused_modconv: bool = True) -> jax.Array:
    """Convolves NHWC `x` with OIHW `weight` modulated per sample by `styles` [N, I].

    Demodulation normalises each output channel; `noise` (broadcastable to the output) is
    added last. fused_modconv=True runs one grouped conv with per-sample weights; False
    scales activations before and after a shared conv (same result, different cost).
    """
    n = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if x.ndim != 4 or x.shape[-1] != in_channels:
        raise ValueError(f"x {x.shape} must be NHWC with {in_channels} channels for weight {weight.shape}")
    if styles.shape != (n, in_channels):
        raise ValueError(f"styles {styles.shape} must be [{n}, {in_channels}]")
    if x.dtype == jnp.float16 and demodulate:
        weight = weight * (1 / np.sqrt(in_channels * kh * kw)
                           / jnp.max(jnp.abs(weight), axis=(1, 2, 3), keepdims=True))
        styles = styles / jnp.max(jnp.abs(styles), axis=1, keepdims=True)

    dcoefs = demodulation(weight, styles) if demodulate else None

    conv = lambda x, w, groups=1: conv2d_resample(
        x, w.astype(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
        groups=groups, flip_weight=flip_weight)
    if not fused_modconv:
        x = scale_channels(x, styles)
        x = conv(x, weight)
        if demodulate:
            x = scale_channels(x, dcoefs)
    else:
        w = weight[None] * styles[:, None, :, None, None]  # [N, O, I, kh, kw]
        if demodulate:
            w = w * dcoefs[:, :, None, None, None]
        x = jax.vmap(lambda xi, wi: conv(xi[None], wi)[0])(x, w)
    if noise is not None:
        x = x + noise.astype(x.dtype)
    return x
