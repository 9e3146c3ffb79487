"""The building blocks of R3GAN ("The GAN is dead; long live the GAN!", NeurIPS 2024), NHWC.

Parameter names and layouts are those of the official state dicts (OIHW conv weights under
'Layer.weight', dense weights [out, in] under 'weight', activation biases under 'Bias', the
resampling kernel buffer 'Kernel'), so the module tree converts to and from them by name.
Weights follow the official "MSR" law: normal with std gain / sqrt(fan_in).
"""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.networks.layers import BUFFERS
from stylegan_jax.ops.bias_act import bias_act
from stylegan_jax.ops.conv2d import conv2d
from stylegan_jax.ops.filters import setup_filter
from stylegan_jax.ops.grouped_conv import grouped_conv2d
from stylegan_jax.ops.upfirdn2d import downsample2d, upsample2d

LRELU_SLOPE = 0.2
# The gain that keeps the variance of a leaky ReLU's input and output equal.
LRELU_GAIN = float(np.sqrt(2 / (1 + LRELU_SLOPE ** 2)))
# Convs per residual branch: a branch of depth d is scaled by L^(-1/(2d - 2)) over L blocks.
BRANCH_DEPTH = 3


def msr_init(gain: float, fan_in: int) -> Callable[..., jax.Array]:
    """Initialiser drawing normal weights with std gain / sqrt(fan_in) (zeros when gain is 0)."""
    std = np.float32(gain / np.sqrt(fan_in))
    return lambda key, shape: jax.random.normal(key, shape, jnp.float32) * std


def block_gain(total_blocks: int) -> float:
    """Init gain of the first two convs of every residual block, for `total_blocks` blocks in all."""
    return LRELU_GAIN * total_blocks ** (-1 / (2 * BRANCH_DEPTH - 2))


class Convolution(nn.Module):
    """Bias-free 'same' conv, optionally grouped; its OIHW weight is 'Layer.weight'."""

    in_channels: int
    out_channels: int
    kernel_size: int = 1
    groups: int = 1
    gain: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        fan_in = self.in_channels // self.groups * k * k
        weight = self.param("Layer.weight", msr_init(self.gain, fan_in),
                            (self.out_channels, self.in_channels // self.groups, k, k))
        pad = (k - 1) // 2
        if self.groups > 1:
            return grouped_conv2d(x, weight.astype(x.dtype), self.groups, pad)
        return conv2d(x, weight.astype(x.dtype), padding=((pad, pad), (pad, pad)))


class Linear(nn.Module):
    """Bias-free dense layer; `weight` is [out, in]."""

    in_features: int
    out_features: int
    gain: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        weight = self.param("weight", msr_init(self.gain, self.in_features), (self.out_features, self.in_features))
        return x @ weight.astype(x.dtype).T


class BiasedActivation(nn.Module):
    """Per-channel bias then leaky ReLU (slope 0.2, no gain); the bias 'Bias' starts at zero."""

    channels: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        bias = self.param("Bias", nn.initializers.zeros, (self.channels,))
        return bias_act(x, bias, act="lrelu", alpha=LRELU_SLOPE, gain=1.0)


class ResidualBlock(nn.Module):
    """x + (1x1 expand, bias-lrelu, grouped kxk, bias-lrelu, 1x1 back); the last conv starts at zero,
    so a fresh block is the identity."""

    channels: int
    cardinality: int
    expansion_factor: int
    kernel_size: int
    total_blocks: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        wide = self.channels * self.expansion_factor
        gain = block_gain(self.total_blocks)
        y = Convolution(self.channels, wide, gain=gain, name="LinearLayer1")(x)
        y = BiasedActivation(wide, name="NonLinearity1")(y)
        y = Convolution(wide, wide, self.kernel_size, groups=self.cardinality, gain=gain, name="LinearLayer2")(y)
        y = BiasedActivation(wide, name="NonLinearity2")(y)
        return x + Convolution(wide, self.channels, gain=0.0, name="LinearLayer3")(y)


def lowpass_taps(resampling_filter: Sequence[float]) -> np.ndarray:
    """The 1-D taps of the resampling kernel: the filter convolved with [1, 1]."""
    return np.convolve(np.asarray(resampling_filter, np.float64), [1.0, 1.0])


class Resampler(nn.Module):
    """x2 up- or down-sampling with the normalised outer product of `lowpass_taps` (buffer 'Kernel')."""

    resampling_filter: Sequence[float]
    up: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        taps = lowpass_taps(self.resampling_filter)
        self.variable(BUFFERS, "Kernel", lambda: jnp.asarray(setup_filter(taps)))
        # The same kernel as two 1-D passes (the buffer only records it, like StyleGAN2's filters).
        f = setup_filter(taps, separable=True)
        return upsample2d(x, f) if self.up else downsample2d(x, f)


class UpsampleLayer(nn.Module):
    """A 1x1 conv when the width changes, then x2 upsampling."""

    in_channels: int
    out_channels: int
    resampling_filter: Sequence[float]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.in_channels != self.out_channels:
            x = Convolution(self.in_channels, self.out_channels, name="LinearLayer")(x)
        return Resampler(self.resampling_filter, up=True, name="Resampler")(x)


class DownsampleLayer(nn.Module):
    """x2 downsampling, then a 1x1 conv when the width changes."""

    in_channels: int
    out_channels: int
    resampling_filter: Sequence[float]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = Resampler(self.resampling_filter, up=False, name="Resampler")(x)
        if self.in_channels != self.out_channels:
            x = Convolution(self.in_channels, self.out_channels, name="LinearLayer")(x)
        return x


class GenerativeBasis(nn.Module):
    """A learned [4, 4, C] image ('Basis', stored [C, 4, 4]; [C, H, W] for another shape) scaled
    channel-wise by a linear map of v."""

    in_features: int
    out_channels: int
    shape: tuple[int, int] = (4, 4)

    @nn.compact
    def __call__(self, v: jax.Array) -> jax.Array:
        basis = self.param("Basis", jax.random.normal, (self.out_channels, *self.shape))
        scale = Linear(self.in_features, self.out_channels, name="LinearLayer")(v)
        return jnp.transpose(basis, (1, 2, 0)).astype(scale.dtype)[None] * scale[:, None, None, :]


class DepthwiseBasis(nn.Module):
    """One 4x4 filter per channel over a 4x4 input, unpadded: [N, 4, 4, C] -> [N, C]; weight [C, 1, 4, 4]
    (H x W for another `shape`)."""

    channels: int
    shape: tuple[int, int] = (4, 4)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        height, width = self.shape
        weight = self.param("weight", msr_init(1.0, height * width), (self.channels, 1, height, width))
        if x.shape[1:3] != tuple(self.shape):
            raise ValueError(f"{self.name}: expected {height}x{width} inputs, got {x.shape}")
        return jnp.einsum("nhwc,chw->nc", x, weight[:, 0].astype(x.dtype))


class DiscriminativeBasis(nn.Module):
    """Depthwise 4x4 (or `shape`) basis to a vector, then a linear map to `out_features`; with `features`,
    also returns the vector (D's final features)."""

    channels: int
    out_features: int
    shape: tuple[int, int] = (4, 4)

    @nn.compact
    def __call__(self, x: jax.Array, features: bool = False) -> jax.Array | tuple[jax.Array, jax.Array]:
        vector = DepthwiseBasis(self.channels, self.shape, name="Basis")(x)
        out = Linear(self.channels, self.out_features, name="LinearLayer")(vector)
        return (out, vector) if features else out
