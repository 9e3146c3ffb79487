"""StyleGAN2 generator (mapping + synthesis with 'orig', 'skip' and 'resnet' blocks) in Flax."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.core import FrozenDict

from stylegan_jax.images import aspect_factors, image_size, short_side
from stylegan_jax.networks.layers import (
    BUFFERS, AcceptsChannelsLastFlag, Conv2dLayer, FullyConnectedLayer, GeneratorBase, MappingNetwork,
    compute_dtype_for, resample_filter_buffer)
from stylegan_jax.ops.bias_act import ACTIVATIONS, bias_act
from stylegan_jax.ops.modulated_conv2d import modulated_conv2d
from stylegan_jax.ops.progressive import lerp_clip, level_lod
from stylegan_jax.ops.upfirdn2d import upsample2d

NOISE_MODES = ("random", "const", "none")
# Variable collection of per-layer noise images [N, H, W, 1] that replace the random draws of
# noise_mode="random" (the trainer draws them itself, or replays recorded ones).
NOISE_INPUTS = "noise_inputs"
ARCHITECTURES = ("orig", "skip", "resnet", "progressive")  # progressive: the StyleGAN2 paper's configs B-D


def block_resolutions(img_resolution: int | Sequence[int]) -> list[int]:
    """Resolutions of the blocks, 4 up to the image's shorter side, which names them (b4, b8, ...).

    img_resolution is one side or a (height, width) pair of powers of two >= 4; a non-square block
    at resolution r has the image's aspect: block_shape(r, img_resolution).
    """
    try:
        side = short_side(img_resolution)
    except ValueError as e:
        raise ValueError(f"img_resolution: {e}") from None
    return [2 ** i for i in range(2, int(np.log2(side)) + 1)]


def block_shape(resolution: int, img_resolution: int | Sequence[int]) -> tuple[int, int]:
    """(height, width) of the block named by `resolution` in a network of the image's aspect."""
    aspect_h, aspect_w = aspect_factors(img_resolution)
    return resolution * aspect_h, resolution * aspect_w


def channels_per_resolution(resolutions: Sequence[int], channel_base: int, channel_max: int) -> dict[int, int]:
    """The official width rule: channels = min(channel_base // res, channel_max)."""
    return {res: min(channel_base // res, channel_max) for res in resolutions}


def low_precision_resolution(img_resolution: int | Sequence[int], num_fp16_res: int) -> int:
    """Lowest block resolution that runs in reduced precision for `num_fp16_res` (official rule)."""
    return max(2 ** (int(np.log2(short_side(img_resolution))) + 1 - num_fp16_res), 8)


def noise_image(module: nn.Module, noise_mode: str, batch: int, height: int, width: int) -> jax.Array | None:
    """A layer's noise [N, H, W, 1] (or [1, H, W, 1]) for `noise_mode`, None for 'none'; registers the
    layer's 'noise_const' buffer. 'random' takes the image given in NOISE_INPUTS (training) if any."""
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
    noise_const = module.variable(BUFFERS, "noise_const",
                                  lambda: jax.random.normal(module.make_rng("params"), (height, width))).value
    if noise_mode == "random" and module.has_variable(NOISE_INPUTS, "noise"):
        return module.get_variable(NOISE_INPUTS, "noise")  # given from outside (training)
    if noise_mode == "random":
        return jax.random.normal(module.make_rng("noise"), (batch, height, width, 1))
    if noise_mode == "const":
        return noise_const[None, :, :, None]
    return None


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally upsampling 2x) + noise + bias + activation."""

    in_channels: int
    out_channels: int
    w_dim: int
    resolution: int | tuple[int, int]  # one side, or (height, width)
    kernel_size: int = 3
    up: int = 1
    use_noise: bool = True
    activation: str = "lrelu"
    resample_filter: Sequence[float] = (1, 3, 3, 1)
    conv_clamp: float | None = None

    @nn.compact
    def __call__(self, x, w, noise_mode="random", fused_modconv=False, gain=1.0):
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        k, (height, width) = self.kernel_size, image_size(self.resolution)
        styles = FullyConnectedLayer(self.w_dim, self.in_channels, bias_init=1, name="affine")(w)
        weight = self.param("weight", jax.random.normal, (self.out_channels, self.in_channels, k, k))
        f = resample_filter_buffer(self, self.resample_filter)
        noise = None
        if self.use_noise:
            noise = noise_image(self, noise_mode, x.shape[0], height, width)
            strength = self.param("noise_strength", nn.initializers.zeros, ())
            noise = None if noise is None else noise * strength
        bias = self.param("bias", nn.initializers.zeros, (self.out_channels,))
        x = modulated_conv2d(x, weight, styles, noise=noise, up=self.up, padding=k // 2, resample_filter=f,
                             flip_weight=self.up == 1, fused_modconv=fused_modconv)
        act_gain = ACTIVATIONS[self.activation].default_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, bias, act=self.activation, gain=act_gain, clamp=act_clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv without demodulation that turns features into image channels."""

    in_channels: int
    out_channels: int
    w_dim: int
    kernel_size: int = 1
    conv_clamp: float | None = None
    weight_std: float = 1.0  # of the initial weights

    def style_affine(self) -> nn.Module:
        """The layer that maps w to this layer's styles (named 'affine')."""
        return FullyConnectedLayer(self.w_dim, self.in_channels, bias_init=1, name="affine")

    @nn.compact
    def __call__(self, x, w, fused_modconv=False):
        k = self.kernel_size
        styles = self.style_affine()(w)
        styles = styles * np.float32(1 / np.sqrt(self.in_channels * k * k))
        weight = self.param("weight", lambda key, shape: self.weight_std * jax.random.normal(key, shape),
                            (self.out_channels, self.in_channels, k, k))
        bias = self.param("bias", nn.initializers.zeros, (self.out_channels,))
        x = modulated_conv2d(x, weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: (const or 2x up-conv) + conv + optional toRGB."""

    in_channels: int
    out_channels: int
    w_dim: int
    resolution: int | tuple[int, int]  # one side, or (height, width)
    img_channels: int
    is_last: bool
    architecture: str = "skip"
    resample_filter: Sequence[float] = (1, 3, 3, 1)
    conv_clamp: float | None = 256
    use_fp16: bool = False
    compute_dtype: Any = None
    layer_kwargs: Mapping[str, Any] = FrozenDict()

    @property
    def num_conv(self) -> int:
        return 1 if self.in_channels == 0 else 2

    @property
    def num_torgb(self) -> int:
        return int(self.is_last or self.architecture in ("skip", "progressive"))

    @nn.compact
    def __call__(self, x, img, ws, noise_mode="random", fused_modconv=False, fade=None):
        """`fade` (progressive only): how much of the up-sampled lower level's image to keep, clipped to [0, 1]."""
        dtype = compute_dtype_for(self.use_fp16, self.compute_dtype)
        conv = lambda name, cin, **kw: SynthesisLayer(
            cin, self.out_channels, w_dim=self.w_dim, resolution=self.resolution,
            resample_filter=self.resample_filter, conv_clamp=self.conv_clamp, name=name,
            **self.layer_kwargs, **kw)
        f = resample_filter_buffer(self, self.resample_filter)
        common = dict(noise_mode=noise_mode, fused_modconv=fused_modconv)
        if self.in_channels == 0:
            height, width = image_size(self.resolution)
            const = self.param("const", jax.random.normal, (self.out_channels, height, width))
            # Broadcast, then cast: the constant's gradient sums the batch in float32.
            x = jnp.broadcast_to(jnp.transpose(const, (1, 2, 0))[None],
                                 (ws.shape[0], height, width, self.out_channels)).astype(dtype)
            x = conv("conv1", self.out_channels)(x, ws[:, 0], **common)
        elif self.architecture == "resnet":
            x = x.astype(dtype)
            y = Conv2dLayer(self.in_channels, self.out_channels, kernel_size=1, bias=False, up=2,
                            resample_filter=self.resample_filter, name="skip")(x, gain=np.sqrt(0.5))
            x = conv("conv0", self.in_channels, up=2)(x, ws[:, 0], **common)
            x = conv("conv1", self.out_channels)(x, ws[:, 1], gain=np.sqrt(0.5), **common)
            x = y + x
        else:
            x = x.astype(dtype)
            x = conv("conv0", self.in_channels, up=2)(x, ws[:, 0], **common)
            x = conv("conv1", self.out_channels)(x, ws[:, 1], **common)
        if img is not None:
            img = upsample2d(img, f)
        if self.num_torgb:
            y = ToRGBLayer(self.out_channels, self.img_channels, w_dim=self.w_dim, conv_clamp=self.conv_clamp,
                           name="torgb")(x, ws[:, self.num_conv], fused_modconv=fused_modconv)
            y = y.astype(jnp.float32)
            if img is None:
                img = y
            else:
                img = lerp_clip(y, img, fade) if self.architecture == "progressive" else img + y
        return x, img


class SynthesisNetwork(nn.Module):
    """Stack of synthesis blocks from 4x4 (4 on the shorter side) to img_resolution, summing toRGB outputs ('skip')."""

    w_dim: int
    img_resolution: int | tuple[int, int]  # one side, or (height, width)
    img_channels: int
    channel_base: int = 32768
    channel_max: int = 512
    num_fp16_res: int = 4
    compute_dtype: Any = None
    remat: bool = False  # recompute each block's activations in the backward pass (jax.checkpoint)
    block_kwargs: Mapping[str, Any] = FrozenDict()
    level_resolution: int | None = None  # progressive growing: the blocks up to this level only

    def setup(self):
        resolutions = block_resolutions(self.img_resolution)
        if self.level_resolution is not None:
            resolutions = [res for res in resolutions if res <= self.level_resolution]
        self.progressive = self.block_kwargs.get("architecture") == "progressive"
        if self.progressive:
            self.lod = self.variable(BUFFERS, "lod", lambda: jnp.zeros((), jnp.float32))
        channels = channels_per_resolution(resolutions, self.channel_base, self.channel_max)
        fp16_res = low_precision_resolution(self.img_resolution, self.num_fp16_res)
        # noise_mode and fused_modconv (arguments 4 and 5, counting the module) are static.
        block = nn.remat(SynthesisBlock, static_argnums=(4, 5)) if self.remat else SynthesisBlock
        self.blocks = [
            block(channels[res // 2] if res > 4 else 0, channels[res], w_dim=self.w_dim,
                           resolution=block_shape(res, self.img_resolution), img_channels=self.img_channels,
                           is_last=res == resolutions[-1],
                           use_fp16=res >= fp16_res, compute_dtype=self.compute_dtype,
                           name=f"b{res}", **self.block_kwargs)
            for res in resolutions]

    def __call__(self, ws, noise_mode="random", fused_modconv=False, update_emas=False):
        del update_emas  # StyleGAN2 synthesis has no running statistics
        x = img = None
        w_idx = 0
        ws = ws.astype(jnp.float32)
        full = short_side(self.img_resolution)
        for block in self.blocks:
            fade = self.lod.value - level_lod(short_side(block.resolution), full) if self.progressive else None
            x, img = block(x, img, ws[:, w_idx:w_idx + block.num_conv + block.num_torgb], noise_mode, fused_modconv,
                           fade)
            w_idx += block.num_conv
        return img


def num_ws_for(img_resolution: int | Sequence[int]) -> int:
    """Number of w vectors the StyleGAN2 synthesis network consumes."""
    return 2 * len(block_resolutions(img_resolution))


class Generator(AcceptsChannelsLastFlag, GeneratorBase):
    """StyleGAN2 generator with the official constructor arguments; images are NHWC."""

    z_dim: int
    c_dim: int
    w_dim: int
    img_resolution: int | tuple[int, int]  # one side, or (height, width) with a power-of-two aspect
    img_channels: int
    mapping_kwargs: Mapping[str, Any] = FrozenDict()
    channel_base: int = 32768
    channel_max: int = 512
    num_fp16_res: int = 4
    conv_clamp: float | None = 256
    architecture: str = "skip"
    resample_filter: Sequence[float] = (1, 3, 3, 1)
    fused_modconv_default: Any = "inference_only"  # official; only True selects the fused form here
    kernel_size: int = 3
    use_noise: bool = True
    activation: str = "lrelu"
    compute_dtype: Any = None
    remat: bool = False  # jax.checkpoint per synthesis block: less memory for about a third more compute
    level_resolution: int | None = None  # architecture 'progressive': build the network up to this level

    @property
    def num_ws(self) -> int:
        return num_ws_for(self.img_resolution)

    def setup(self):
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if self.level_resolution is not None and self.architecture != "progressive":
            raise ValueError(f"level_resolution needs architecture 'progressive', got {self.architecture!r}")
        layer_kwargs = dict(kernel_size=self.kernel_size, use_noise=self.use_noise, activation=self.activation)
        block_kwargs = dict(architecture=self.architecture, resample_filter=tuple(self.resample_filter),
                            conv_clamp=self.conv_clamp, layer_kwargs=FrozenDict(layer_kwargs))
        self.synthesis_network = SynthesisNetwork(
            self.w_dim, self.img_resolution, self.img_channels, channel_base=self.channel_base,
            channel_max=self.channel_max, num_fp16_res=self.num_fp16_res, compute_dtype=self.compute_dtype,
            remat=self.remat, block_kwargs=FrozenDict(block_kwargs), level_resolution=self.level_resolution,
            name="synthesis")
        self.mapping_network = MappingNetwork(self.z_dim, self.c_dim, self.w_dim, num_ws=self.num_ws,
                                              name="mapping", **self.mapping_kwargs)

    def synthesis(self, ws, noise_mode="const", fused_modconv=None, update_emas=False):
        """ws [N, num_ws, w_dim] -> NHWC float32 images (unclamped, about [-1, 1])."""
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {ws.shape}")
        # Both formulations compute the same function; under XLA the per-sample grouped conv is the
        # slower one (benchmarks/bench_networks.py), so only an explicit True selects it: the
        # official 'inference_only' (fused for inference) runs non-fused like the default.
        fused = (self.fused_modconv_default if fused_modconv is None else fused_modconv) is True
        return self.synthesis_network(ws, noise_mode=noise_mode, fused_modconv=fused, update_emas=update_emas)

    def __call__(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="const",
                 update_emas=False, fused_modconv=None):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, noise_mode=noise_mode, fused_modconv=fused_modconv, update_emas=update_emas)
