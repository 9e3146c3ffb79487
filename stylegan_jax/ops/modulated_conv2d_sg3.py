"""StyleGAN3's modulated convolution: pre-normalised, per-sample modulated weights, NHWC."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.ops.conv2d import conv2d
from stylegan_jax.ops.precision import scale_channels


def _parse_conv_padding(padding) -> tuple[tuple[int, int], tuple[int, int]]:
    values = (padding, padding) if np.ndim(padding) == 0 else tuple(padding)
    if len(values) != 2 or any(isinstance(v, bool) or int(v) != v or v < 0 for v in values):
        raise ValueError(f"padding must be a non-negative int or [pad_h, pad_w], got {padding!r}")
    return (int(values[0]),) * 2, (int(values[1]),) * 2


def modulated_conv2d(x: jax.Array, w: jax.Array, s: jax.Array, demodulate: bool = True,
                     padding=0, input_gain: jax.Array | float | None = None) -> jax.Array:
    """Convolves NHWC `x` [N, H, W, I] with OIHW weights `w` modulated per sample by styles `s` [N, I].

    With `demodulate`, `w` and `s` are first scaled to unit RMS and each output channel of the
    modulated weights is normalised; `input_gain` (a scalar, [I] or [N, I]) then scales the
    weights' input channels. `padding` (int or [pad_h, pad_w]) pads both sides of each axis.
    Weights are computed in float32 and cast to x's dtype for the convolution.
    """
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"modulated_conv2d expects NHWC x and OIHW w, got {x.shape} and {w.shape}")
    n, in_channels = x.shape[0], w.shape[1]
    if x.shape[-1] != in_channels:
        raise ValueError(f"x has {x.shape[-1]} channels but w {w.shape} expects {in_channels}")
    if s.shape != (n, in_channels):
        raise ValueError(f"styles {s.shape} must be [{n}, {in_channels}]")
    pad = _parse_conv_padding(padding)
    w = w.astype(jnp.float32)
    s = s.astype(jnp.float32)

    if demodulate:
        w = w * jax.lax.rsqrt(jnp.mean(jnp.square(w), axis=(1, 2, 3), keepdims=True))
        s = s * jax.lax.rsqrt(jnp.mean(jnp.square(s)))
    # The per-sample weights w[o, i] * s[n, i] * d[n, o] * gain[n, i] are never built: scaling the
    # input channels by s * gain and the output channels by d around one shared conv is the same
    # function and compiles to a plain batched conv.
    in_scale = s
    if input_gain is not None:
        gain = jnp.asarray(input_gain, jnp.float32)
        if gain.shape not in ((), (in_channels,), (n, in_channels)):
            raise ValueError(f"input_gain {gain.shape} must be a scalar, [{in_channels}] or "
                             f"[{n}, {in_channels}]")
        in_scale = s * jnp.broadcast_to(gain, (n, in_channels))
    y = conv2d(scale_channels(x, in_scale), w.astype(x.dtype), padding=pad)
    if demodulate:
        y = scale_channels(y, demodulation(w, s))
    return y


def demodulation(w: jax.Array, s: jax.Array) -> jax.Array:
    """[N, O] factors that give each output channel of the weights w [O, I, kh, kw] modulated by s [N, I]
    unit norm: 1 / sqrt(sum over i, kh, kw of (w * s)^2 + 1e-8)."""
    return jax.lax.rsqrt(jnp.square(s) @ jnp.sum(jnp.square(w), axis=(2, 3)).T + 1e-8)
