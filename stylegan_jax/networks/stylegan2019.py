"""The 2019 StyleGAN (style-based generator with AdaIN, and the progressive-GAN discriminator) in Flax.

Variables keep the official TensorFlow names and layouts (dense [in, out], conv [kh, kw, in, out],
const [1, C, 4, 4]) inside the modules 'mapping' (G_mapping) and 'synthesis' (G_synthesis), so
an official 2019 pickle's variables load by name (`convert/tf1_pickle.py`). Widths follow
`channel_base` as in StyleGAN2 (channels = min(channel_base // res, channel_max); the official
`fmap_base` is channel_base / 2).

Progressive growing: both networks read the level of detail from their 'lod' buffer and blend two
levels like the official 'linear' structure. `level_resolution` builds the network only up to one
level (its output, or input, has that size): the trainer compiles each level once and fades with
the traced lod, without recompiling.
"""
from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.core import FrozenDict

from stylegan_jax.networks.layers import BUFFERS, GeneratorBase, check_rotation_head, truncate
from stylegan_jax.networks.stylegan2 import block_resolutions, channels_per_resolution, noise_image
from stylegan_jax.ops.normalization import minibatch_std, normalize_2nd_moment
from stylegan_jax.ops.progressive import (
    blur_121, conv_downscale, conv_same, downscale_box, instance_norm, lerp_clip, level_lod, upscale_conv,
    upscale_nearest)

LRELU_GAIN = np.sqrt(2)


def leaky_relu(x: jax.Array) -> jax.Array:
    """The 2019 code's leaky ReLU (slope 0.2, no gain: the gain is in the weights)."""
    return jnp.maximum(x, x * 0.2)


def scaled_weight(module: nn.Module, shape: tuple[int, ...], gain: float, lr_multiplier: float = 1.0) -> jax.Array:
    """The official equalised-lr weight: stored N(0, 1 / lrmul), used times gain / sqrt(fan_in) * lrmul."""
    w = module.param("weight", lambda key: jax.random.normal(key, shape) / lr_multiplier)
    return w * np.float32(gain / np.sqrt(np.prod(shape[:-1])) * lr_multiplier)


def added_bias(module: nn.Module, x: jax.Array, lr_multiplier: float = 1.0) -> jax.Array:
    """x plus the module's 'bias' over the last axis."""
    return x + module.param("bias", nn.initializers.zeros, (x.shape[-1],)) * np.float32(lr_multiplier)


class Dense(nn.Module):
    """Equalised-lr dense layer [in, out] with optional bias, gain and leaky ReLU."""

    features: int
    gain: float = LRELU_GAIN
    lr_multiplier: float = 1.0
    bias: bool = True
    activate: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        x = x @ scaled_weight(self, (x.shape[1], self.features), self.gain, self.lr_multiplier)
        if self.bias:
            x = added_bias(self, x, self.lr_multiplier)
        return leaky_relu(x) if self.activate else x


def resampled_conv(x: jax.Array, w: jax.Array, resample: str, fused: bool) -> jax.Array:
    """The 2019 convs: plain 'SAME', 'up' (nearest up-scaling and conv, then blur) or 'down' (blur, then
    conv and box down-scaling); `fused` takes the one-op forms that compute the same."""
    if resample == "up":
        return blur_121(upscale_conv(x, w, fused))
    if resample == "down":
        return conv_downscale(blur_121(x), w, fused)
    return conv_same(x, w)


class Conv(nn.Module):
    """Equalised-lr conv [k, k, in, out] + bias (+ leaky ReLU); `resample` as in `resampled_conv`."""

    features: int
    kernel: int = 3
    gain: float = LRELU_GAIN
    resample: str = ""
    fused: bool = False
    activate: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        w = scaled_weight(self, (self.kernel, self.kernel, x.shape[-1], self.features), self.gain)
        x = added_bias(self, resampled_conv(x, w, self.resample, self.fused))
        return leaky_relu(x) if self.activate else x


class LatentMapping(nn.Module):
    """G_mapping: label embedding, pixel norm, dense layers (lr multiplier 0.01), broadcast to num_ws;
    tracks the average w ('dlatent_avg') for truncation."""

    z_dim: int
    c_dim: int
    w_dim: int
    num_ws: int
    num_layers: int = 8
    layer_features: int = 512
    lr_multiplier: float = 0.01
    w_avg_beta: float = 0.995

    @nn.compact
    def __call__(self, z, c, truncation_psi: Any = 1.0, truncation_cutoff: int | None = 8, update_emas=False):
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape [N, {self.z_dim}], got {z.shape}")
        x = z.astype(jnp.float32)
        if self.c_dim:
            embed = self.param("LabelConcat", nn.initializers.normal(1.0), (self.c_dim, self.z_dim))
            x = jnp.concatenate([x, c.astype(jnp.float32) @ embed], axis=1)
        x = normalize_2nd_moment(x)
        for i in range(self.num_layers):
            features = self.w_dim if i == self.num_layers - 1 else self.layer_features
            x = Dense(features, lr_multiplier=self.lr_multiplier, name=f"Dense{i}")(x)
        w_avg = self.variable(BUFFERS, "dlatent_avg", jnp.zeros, (self.w_dim,), jnp.float32)
        if update_emas and self.is_mutable_collection(BUFFERS):
            batch_mean = jnp.mean(jax.lax.stop_gradient(x), axis=0)
            w_avg.value = batch_mean + (w_avg.value - batch_mean) * self.w_avg_beta
        ws = jnp.broadcast_to(x[:, None], (x.shape[0], self.num_ws, self.w_dim))
        if isinstance(truncation_psi, (int, float)) and truncation_psi == 1:
            return ws
        return truncate(ws, w_avg.value, truncation_psi, truncation_cutoff)


class Noise(nn.Module):
    """Per-pixel noise with a learned per-channel strength ('weight', zeros at first)."""

    resolution: int

    @nn.compact
    def __call__(self, x: jax.Array, noise_mode: str) -> jax.Array:
        noise = noise_image(self, noise_mode, x.shape[0], self.resolution, self.resolution)
        strength = self.param("weight", nn.initializers.zeros, (x.shape[-1],))
        return x if noise is None else x + noise * strength


class StyledLayer(nn.Module):
    """One 2019 synthesis layer: the learned constant ('Const') or a conv, then noise, bias, leaky
    ReLU, instance norm and AdaIN (the style's scale and shift from w, 'StyleMod')."""

    features: int
    resolution: int
    resample: str = ""
    fused: bool = False
    is_const: bool = False

    @nn.compact
    def __call__(self, x: jax.Array | None, w: jax.Array, noise_mode: str) -> jax.Array:
        c = self.features
        if self.is_const:
            const = self.param("const", nn.initializers.ones, (1, c, 4, 4))
            x = jnp.broadcast_to(jnp.transpose(const, (0, 2, 3, 1)), (w.shape[0], 4, 4, c))
        else:
            weight = scaled_weight(self, (3, 3, x.shape[-1], c), LRELU_GAIN)
            x = resampled_conv(x, weight, self.resample, self.fused)
        x = Noise(self.resolution, name="Noise")(x, noise_mode)
        x = instance_norm(leaky_relu(added_bias(self, x)))
        style = Dense(2 * c, gain=1.0, activate=False, name="StyleMod")(w)
        return x * (style[:, None, None, :c] + 1) + style[:, None, None, c:]


class SynthesisBlock(nn.Module):
    """One resolution of G_synthesis: 'Const' and 'Conv' at 4x4, else 'Conv0_up' and 'Conv1'."""

    features: int
    resolution: int
    fused: bool = False

    @nn.compact
    def __call__(self, x: jax.Array | None, ws: jax.Array, noise_mode: str) -> jax.Array:
        first, second = ("Const", "Conv") if self.resolution == 4 else ("Conv0_up", "Conv1")
        x = StyledLayer(self.features, self.resolution, resample="" if x is None else "up", fused=self.fused,
                        is_const=x is None, name=first)(x, ws[:, 0], noise_mode)
        return StyledLayer(self.features, self.resolution, name=second)(x, ws[:, 1], noise_mode)


def fused_at(resolution: int, fused_scale: Any) -> bool:
    """Whether the up/down conv of a block at `resolution` is the fused one ('auto': from 128 up)."""
    return resolution >= 128 if fused_scale == "auto" else bool(fused_scale)


class Synthesis(nn.Module):
    """G_synthesis: learned 4x4 constant, two styled layers per resolution, a ToRGB per level."""

    w_dim: int
    img_resolution: int
    img_channels: int
    channel_base: int = 16384
    channel_max: int = 512
    fused_scale: Any = "auto"
    level_resolution: int | None = None

    @nn.compact
    def __call__(self, ws: jax.Array, noise_mode: str = "random", update_emas: bool = False) -> jax.Array:
        del update_emas
        top = self.level_resolution or self.img_resolution
        resolutions = block_resolutions(top)
        channels = channels_per_resolution(resolutions, self.channel_base, self.channel_max)
        lod = self.variable(BUFFERS, "lod", lambda: jnp.zeros((), jnp.float32)).value
        ws = ws.astype(jnp.float32)
        torgb = lambda res, x: Conv(self.img_channels, kernel=1, gain=1.0, activate=False,
                                    name=f"ToRGB_lod{level_lod(res, self.img_resolution)}")(x)
        x = img = None
        for res in resolutions:
            x = SynthesisBlock(channels[res], res, fused=fused_at(res, self.fused_scale),
                               name=f"{res}x{res}")(x, ws[:, 2 * len(block_resolutions(res)) - 2:], noise_mode)
            y = torgb(res, x)
            img = y if img is None else lerp_clip(y, upscale_nearest(img), lod - level_lod(res, self.img_resolution))
        return img


class Generator(GeneratorBase):
    """G_style of the 2019 StyleGAN: mapping + synthesis, NHWC images; truncation's default
    cutoff is the official 8 layers."""

    z_dim: int
    c_dim: int
    w_dim: int
    img_resolution: int
    img_channels: int
    mapping_kwargs: Mapping[str, Any] = FrozenDict()
    channel_base: int = 16384
    channel_max: int = 512
    fused_scale: Any = "auto"  # True, False or 'auto' (the transposed/strided fused convs from 128 pixels)
    level_resolution: int | None = None  # progressive growing: build the network up to this level only

    @property
    def num_ws(self) -> int:
        return 2 * len(block_resolutions(self.img_resolution))

    def setup(self):
        self.mapping_network = LatentMapping(self.z_dim, self.c_dim, self.w_dim, self.num_ws, name="mapping",
                                       **self.mapping_kwargs)
        self.synthesis_network = Synthesis(self.w_dim, self.img_resolution, self.img_channels,
                                           channel_base=self.channel_base, channel_max=self.channel_max,
                                           fused_scale=self.fused_scale, level_resolution=self.level_resolution,
                                           name="synthesis")

    def mapping(self, z, c, truncation_psi: Any = 1.0, truncation_cutoff: int | None = 8, update_emas=False):
        """z [N, z_dim] (and labels) -> ws [N, num_ws, w_dim], truncated in the first `truncation_cutoff` layers."""
        return self.mapping_network(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                                    update_emas=update_emas)

    def synthesis(self, ws, noise_mode="const", update_emas=False):
        """ws [N, num_ws, w_dim] -> NHWC float32 images at the level's (or full) resolution."""
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {ws.shape}")
        return self.synthesis_network(ws, noise_mode=noise_mode, update_emas=update_emas)

    def __call__(self, z, c=None, truncation_psi=1.0, truncation_cutoff=8, noise_mode="const", update_emas=False):
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff, update_emas)
        return self.synthesis(ws, noise_mode=noise_mode, update_emas=update_emas)


class DiscriminatorBlock(nn.Module):
    """One resolution of D_basic: 'Conv0', then the blurred, down-sampling 'Conv1_down'."""

    features: int
    out_features: int
    fused: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = Conv(self.features, name="Conv0")(x)
        return Conv(self.out_features, resample="down", fused=self.fused, name="Conv1_down")(x)


class DiscriminatorHead(nn.Module):
    """The 4x4 end of D_basic: 'Conv', 'Dense0' and the linear 'Dense1'; with `features`, also returns the
    final features (the 'Dense0' output)."""

    features: int
    dense_features: int
    outputs: int

    @nn.compact
    def __call__(self, x: jax.Array, features: bool = False) -> jax.Array | tuple[jax.Array, jax.Array]:
        x = Conv(self.features, name="Conv")(x)
        x = jnp.transpose(x, (0, 3, 1, 2))  # the official dense layer flattens NCHW activations
        vector = Dense(self.dense_features, name="Dense0")(x)
        out = Dense(self.outputs, gain=1.0, activate=False, name="Dense1")(vector)
        return (out, vector) if features else out


class Discriminator(nn.Module):
    """D_basic of the 2019 StyleGAN (the progressive-GAN design): FromRGB per level, two convs per
    resolution (the second blurred and down-sampling), minibatch stddev, conv and two dense layers;
    with labels, the score of the label's output (LabelSwitch)."""

    c_dim: int
    img_resolution: int
    img_channels: int
    channel_base: int = 16384
    channel_max: int = 512
    mbstd_group_size: int = 4
    mbstd_num_features: int = 1
    fused_scale: Any = "auto"
    level_resolution: int | None = None
    rotation_classes: int = 0  # > 0: a linear 'rotation' head on the final features (SS-GAN); 0: none

    @nn.nowrap
    def example_inputs(self, batch: int = 1) -> tuple[jax.Array, jax.Array]:
        """Zero images (at the level's resolution) and labels, e.g. for `init`."""
        side = self.level_resolution or self.img_resolution
        return jnp.zeros((batch, side, side, self.img_channels)), jnp.zeros((batch, self.c_dim))

    @nn.compact
    def __call__(self, img: jax.Array, c: jax.Array | None = None, update_emas: bool = False,
                 rotation: bool = False) -> jax.Array | tuple[jax.Array, jax.Array]:
        """Scores [N, 1]; with `rotation`, also the rotation head's logits [N, rotation_classes]."""
        del update_emas
        check_rotation_head(self, rotation)
        top = self.level_resolution or self.img_resolution
        if img.ndim != 4 or img.shape[1:] != (top, top, self.img_channels):
            raise ValueError(f"images must be NHWC of shape [N, {top}, {top}, {self.img_channels}], got {img.shape}")
        resolutions = block_resolutions(top)[::-1]
        channels = channels_per_resolution(resolutions + [2], self.channel_base, self.channel_max)
        lod = self.variable(BUFFERS, "lod", lambda: jnp.zeros((), jnp.float32)).value
        fromrgb = lambda res, image: Conv(channels[res], kernel=1,
                                          name=f"FromRGB_lod{level_lod(res, self.img_resolution)}")(image)
        img = img.astype(jnp.float32)
        x = fromrgb(top, img)
        for res in resolutions[:-1]:
            x = DiscriminatorBlock(channels[res], channels[res // 2], fused=fused_at(res, self.fused_scale),
                                   name=f"{res}x{res}")(x)
            img = downscale_box(img)
            x = lerp_clip(x, fromrgb(res // 2, img), lod - level_lod(res, self.img_resolution))
        if self.mbstd_group_size > 1:
            x = minibatch_std(x, self.mbstd_group_size, self.mbstd_num_features)
        x = DiscriminatorHead(channels[4], channels[2], max(self.c_dim, 1), name="4x4")(x, bool(self.rotation_classes))
        x, features = x if self.rotation_classes else (x, None)
        if self.c_dim:
            x = jnp.sum(x * c.astype(x.dtype), axis=1, keepdims=True)
        if not self.rotation_classes:
            return x
        rotation_logits = Dense(self.rotation_classes, gain=1.0, activate=False, name="rotation")(features)
        return (x, rotation_logits) if rotation else x
