"""StyleGAN-T generator (Sauer et al. 2023) in Flax, conditioned on a CLIP text embedding given as an input.

Differences from StyleGAN2 that this module follows from the official generator:
- mapping: a 2-layer MLP of width z_dim (lr multiplier 0.01) on the normalised z gives x; its running
  mean `x_avg` (beta 0.995) is what truncation pulls x towards. The text embedding c [N, c_dim] bypasses
  the mapping with no learned projection: w = concat([x, c]), so w_dim = z_dim + c_dim.
- styles are second order: one dense layer gives 3 * in_channels values, s = s1 * s2 + s3 ('affine.proj').
- synthesis starts at 8x8 (base_mult 3) from StyleGAN3's Fourier-feature input; every block has
  `num_res_blocks` pairs of 3x3 modulated convs, the second of each pair residual: GroupNorm on its input,
  a learned layer scale `gamma`, output (gamma * conv(norm(x)) + norm(x)) * sqrt(2). All convs after the
  block's input/up-conv use gain sqrt(0.5).

The CLIP text encoder stays outside G (stylegan_jax.perceptual.clip_text): the official G receives
`F.normalize(clip.encode_text(...))`, i.e. the pooled, projected embedding scaled to unit length;
`normalize_text_embedding` does that scaling. Parameters and buffers carry the official state-dict names
and layouts (e.g. 'synthesis.b16.convs1.1.affine.proj.weight', 'mapping.mlp.fc0.weight', 'mapping.x_avg').
Images are NHWC.
"""
from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.core import FrozenDict

from stylegan_jax.networks.layers import (
    BUFFERS, FullyConnectedLayer, GeneratorBase, compute_dtype_for, is_unit, resample_filter_buffer)
from stylegan_jax.networks import stylegan2
from stylegan_jax.networks.stylegan2 import NOISE_MODES, channels_per_resolution, noise_image
from stylegan_jax.networks.stylegan3 import SynthesisInput
from stylegan_jax.ops.bias_act import ACTIVATIONS, bias_act
from stylegan_jax.ops.modulated_conv2d import modulated_conv2d
from stylegan_jax.ops.normalization import normalize_2nd_moment
from stylegan_jax.ops.precision import scale_channels
from stylegan_jax.ops.upfirdn2d import upsample2d

GN_EPS = 1e-5  # torch.nn.GroupNorm's default
CLIP_TEXT_DIM = 768  # ViT-L/14's text width, the official c_dim

# Official synthesis settings of train.py's --cfg choices ('custom' shows its command-line defaults).
CONFIGS = {
    "full": dict(channel_base=65536, channel_max=2048, num_res_blocks=3, architecture="skip"),
    "lite": dict(channel_base=32768, channel_max=512, num_res_blocks=2, architecture="skip"),
    "custom": dict(channel_base=32768, channel_max=512, num_res_blocks=2, architecture="skip"),
}

# SynthesisNetwork defaults of the official constructor (used where synthesis_kwargs omit a key).
SYNTHESIS_DEFAULTS = FrozenDict(
    channel_base=32768, channel_max=512, num_fp16_res=4, base_mult=3, num_res_blocks=3,
    architecture="orig", resample_filter=(1, 3, 3, 1), conv_clamp=256, fp16_channels_last=False,
    fused_modconv_default="inference_only", kernel_size=3, use_noise=True, activation="lrelu",
    layer_scale_init=1e-5, gn_groups=32)
_LAYER_KEYS = ("kernel_size", "use_noise", "activation", "layer_scale_init", "gn_groups")


def synthesis_settings(synthesis_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The official synthesis kwargs completed with the constructor defaults; ValueError on unknown keys."""
    unknown = sorted(set(synthesis_kwargs) - set(SYNTHESIS_DEFAULTS))
    if unknown:
        raise ValueError(f"unsupported synthesis_kwargs {unknown}")
    settings = {**SYNTHESIS_DEFAULTS, **synthesis_kwargs}
    if settings["architecture"] not in ("orig", "skip"):
        raise ValueError(f"architecture must be 'orig' or 'skip', got {settings['architecture']!r}")
    settings["resample_filter"] = tuple(settings["resample_filter"])
    return settings


def block_resolutions(img_resolution: int, base_mult: int = 3) -> list[int]:
    """Block resolutions 2**base_mult .. img_resolution (official: 8 .. img_resolution)."""
    if img_resolution < 4 or img_resolution & (img_resolution - 1):
        raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
    return [2 ** i for i in range(base_mult, int(np.log2(img_resolution)) + 1)]


def normalize_text_embedding(embedding: jax.Array) -> jax.Array:
    """Scales CLIP text embeddings [N, D] to unit length, as the official text encoder's output."""
    norm = jnp.linalg.norm(embedding, axis=-1, keepdims=True)
    return embedding / jnp.maximum(norm, 1e-12)


CLIP_PREFIX = "mapping.clip."  # the official G's state dict holds its CLIP text encoder here


def split_clip_state_dict(state_dict: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Splits an official state dict into (generator entries, CLIP entries with the prefix removed);
    the CLIP part is an open_clip state dict for stylegan_jax.perceptual.clip_text."""
    g_sd = {k: v for k, v in state_dict.items() if not k.startswith(CLIP_PREFIX)}
    clip_sd = {k[len(CLIP_PREFIX) + len("model."):]: v for k, v in state_dict.items() if k.startswith(CLIP_PREFIX)}
    return g_sd, clip_sd


def init_kwargs_from_state_dict(init_kwargs: Mapping[str, Any], state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Official kwargs plus `clip_dim`, which the official G reads from its CLIP model (ln_final's width)."""
    kwargs = dict(init_kwargs)
    ln_final = state_dict.get(CLIP_PREFIX + "model.ln_final.weight")
    if ln_final is not None:
        kwargs.setdefault("clip_dim", int(np.shape(ln_final)[0]))
    return kwargs


def group_norm(x: jax.Array, groups: int, weight: jax.Array, bias: jax.Array, eps: float = GN_EPS) -> jax.Array:
    """torch.nn.GroupNorm on NHWC `x`, computed in float32 and returned in x's dtype."""
    n, h, w, c = x.shape
    if c % groups:
        raise ValueError(f"{c} channels cannot be split into {groups} groups")
    y = x.astype(jnp.float32).reshape(n, h, w, groups, c // groups)
    mean = jnp.mean(y, axis=(1, 2, 4), keepdims=True)
    var = jnp.mean(jnp.square(y - mean), axis=(1, 2, 4), keepdims=True)
    y = ((y - mean) * jax.lax.rsqrt(var + eps)).reshape(n, h, w, c)
    return (y * weight + bias).astype(x.dtype)


def block_specs(img_resolution: int, settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Constructor arguments of the synthesis blocks (official widths and fp16 rule), lowest resolution first;
    `settings` as from synthesis_settings."""
    s = settings
    resolutions = block_resolutions(img_resolution, s["base_mult"])
    channels = channels_per_resolution(resolutions, s["channel_base"], s["channel_max"])
    fp16_res = max(2 ** (int(np.log2(img_resolution)) + 1 - s["num_fp16_res"]), 8)
    layer_kwargs = FrozenDict({key: s[key] for key in _LAYER_KEYS})
    return [dict(in_channels=channels[res // 2] if res > resolutions[0] else 0, out_channels=channels[res],
                 resolution=res, is_last=res == img_resolution, num_res_blocks=s["num_res_blocks"],
                 architecture=s["architecture"], resample_filter=s["resample_filter"],
                 conv_clamp=s["conv_clamp"], use_fp16=res >= fp16_res, layer_kwargs=layer_kwargs)
            for res in resolutions]


def num_ws_for(img_resolution: int, settings: Mapping[str, Any]) -> int:
    """Number of w vectors the synthesis network consumes: every block's convs plus the last toRGB."""
    return sum(1 + 2 * spec["num_res_blocks"] for spec in block_specs(img_resolution, settings)) + 1


class StyleSplit(nn.Module):
    """Second-order styles: a dense layer to 3 * out_features values (s1, s2, s3), returning s1 * s2 + s3."""

    in_features: int
    out_features: int
    bias_init: float = 1.0

    @nn.compact
    def __call__(self, w: jax.Array) -> jax.Array:
        m = FullyConnectedLayer(self.in_features, 3 * self.out_features, bias_init=self.bias_init, name="proj")(w)
        m1, m2, m3 = jnp.split(m, 3, axis=1)
        return m1 * m2 + m3


class SynthesisLayer(nn.Module):
    """Modulated conv (optionally 2x up) + noise + bias + activation; `residual` adds GroupNorm on the
    input, a layer scale `gamma` and the skip (gamma * y + norm(x)) * sqrt(2)."""

    in_channels: int
    out_channels: int
    w_dim: int
    resolution: int
    kernel_size: int = 3
    up: int = 1
    use_noise: bool = True
    activation: str = "lrelu"
    resample_filter: tuple = (1, 3, 3, 1)
    conv_clamp: float | None = None
    layer_scale_init: float = 1e-5
    residual: bool = False
    gn_groups: int = 32

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array, noise_mode: str = "random", fused_modconv: bool = False,
                 gain: float = 1.0) -> jax.Array:
        if self.residual and (self.in_channels != self.out_channels or self.up != 1):
            raise ValueError("a residual layer needs in_channels == out_channels and up == 1")
        k, dtype = self.kernel_size, x.dtype
        styles = StyleSplit(self.w_dim, self.in_channels, name="affine")(w)
        weight = self.param("weight", jax.random.normal, (self.out_channels, self.in_channels, k, k))
        bias = self.param("bias", nn.initializers.zeros, (self.out_channels,))
        f = resample_filter_buffer(self, self.resample_filter)
        noise = None
        if self.use_noise:
            noise = noise_image(self, noise_mode, x.shape[0], self.resolution, self.resolution)
            strength = self.param("noise_strength", nn.initializers.zeros, ())
            noise = None if noise is None else noise * strength
        if self.residual:
            x = GroupNorm(self.out_channels, self.gn_groups, name="norm")(x)
        y = modulated_conv2d(x, weight, styles, noise=noise, up=self.up, padding=k // 2, resample_filter=f,
                             flip_weight=self.up == 1, fused_modconv=fused_modconv).astype(dtype)
        act_gain = ACTIVATIONS[self.activation].default_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        y = bias_act(y, bias.astype(dtype), act=self.activation, gain=act_gain, clamp=act_clamp)
        if self.residual:
            gamma = self.param("gamma", lambda _: jnp.full((1, self.out_channels, 1, 1), self.layer_scale_init,
                                                            jnp.float32))
            y = scale_channels(y, gamma.reshape(-1))
            y = (y + x) * np.float32(np.sqrt(2))
        return y


class GroupNorm(nn.Module):
    """GroupNorm with torch's parameter names (weight, bias) on NHWC input, computed in float32."""

    channels: int
    groups: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        weight = self.param("weight", nn.initializers.ones, (self.channels,))
        bias = self.param("bias", nn.initializers.zeros, (self.channels,))
        return group_norm(x, self.groups, weight, bias)


class ToRGBLayer(stylegan2.ToRGBLayer):
    """StyleGAN2's toRGB with second-order styles and initial weights of std 0.1."""

    weight_std: float = 0.1

    def style_affine(self) -> nn.Module:
        return StyleSplit(self.w_dim, self.in_channels, name="affine")


class SynthesisBlock(nn.Module):
    """One resolution: Fourier input (first block) or a 2x up-conv, then `num_res_blocks` pairs of convs
    (plain, residual) and, if last or 'skip', a toRGB added to the up-sampled image."""

    in_channels: int  # 0 = first block
    out_channels: int
    w_dim: int
    resolution: int
    img_channels: int
    is_last: bool
    num_res_blocks: int = 1
    architecture: str = "orig"
    resample_filter: tuple = (1, 3, 3, 1)
    conv_clamp: float | None = 256
    use_fp16: bool = False
    compute_dtype: Any = None
    layer_kwargs: Mapping[str, Any] = FrozenDict()

    @property
    def num_conv(self) -> int:
        return 1 + 2 * self.num_res_blocks

    @property
    def num_torgb(self) -> int:
        return int(self.is_last or self.architecture == "skip")

    @nn.compact
    def __call__(self, x, img, ws, noise_mode="random", fused_modconv=False):
        dtype = compute_dtype_for(self.use_fp16, self.compute_dtype)
        layer = lambda name, cin, **kw: SynthesisLayer(
            cin, self.out_channels, w_dim=self.w_dim, resolution=self.resolution,
            resample_filter=self.resample_filter, conv_clamp=self.conv_clamp, name=name,
            **self.layer_kwargs, **kw)
        common = dict(noise_mode=noise_mode, fused_modconv=fused_modconv)
        f = resample_filter_buffer(self, self.resample_filter)
        if self.in_channels == 0:
            x = SynthesisInput(self.w_dim, self.out_channels, self.resolution, sampling_rate=self.resolution,
                               bandwidth=2, name="input")(ws[:, 0]).astype(dtype)
        else:
            if x.shape[1:] != (self.resolution // 2, self.resolution // 2, self.in_channels):
                raise ValueError(f"b{self.resolution}: unexpected input shape {x.shape}")
            x = layer("conv0", self.in_channels, up=2)(x.astype(dtype), ws[:, 0], **common)
        for i in range(2 * self.num_res_blocks):
            x = layer(f"convs1.{i}", self.out_channels, residual=i % 2 == 1)(
                x, ws[:, 1 + i], gain=np.sqrt(0.5), **common)
        if img is not None:
            img = upsample2d(img, f)
        if self.num_torgb:
            y = ToRGBLayer(self.out_channels, self.img_channels, w_dim=self.w_dim, conv_clamp=self.conv_clamp,
                           name="torgb")(x, ws[:, self.num_conv], fused_modconv=fused_modconv)
            y = y.astype(jnp.float32)
            img = y if img is None else img + y
        return x, img


class SynthesisNetwork(nn.Module):
    """Blocks from 8x8 to img_resolution; ws [N, num_ws, w_dim] -> NHWC float32 images."""

    w_dim: int
    img_resolution: int
    img_channels: int = 3
    settings: Mapping[str, Any] = SYNTHESIS_DEFAULTS
    compute_dtype: Any = None

    @nn.compact
    def __call__(self, ws, noise_mode="random", fused_modconv=False, update_emas=False):
        del update_emas  # no running statistics in the synthesis network
        ws = ws.astype(jnp.float32)
        x = img = None
        w_idx = 0
        for spec in block_specs(self.img_resolution, self.settings):
            block = SynthesisBlock(w_dim=self.w_dim, img_channels=self.img_channels,
                                   compute_dtype=self.compute_dtype, name=f"b{spec['resolution']}", **spec)
            x, img = block(x, img, ws[:, w_idx:w_idx + block.num_conv + block.num_torgb], noise_mode, fused_modconv)
            w_idx += block.num_conv
        return img


class MappingNetwork(nn.Module):
    """z -> x by an MLP of width z_dim; w = concat([x (truncated towards x_avg), c]) broadcast to num_ws."""

    z_dim: int
    c_dim: int
    num_ws: int | None
    num_layers: int = 2
    activation: str = "lrelu"
    lr_multiplier: float = 0.01
    x_avg_beta: float | None = 0.995

    @nn.compact
    def __call__(self, z: jax.Array, c: jax.Array | None, truncation_psi: Any = 1.0,
                 truncation_cutoff: int | None = None, update_emas: bool = False) -> jax.Array:
        if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape [N, {self.z_dim}], got {None if z is None else z.shape}")
        if self.c_dim > 0 and (c is None or c.ndim != 2 or c.shape != (z.shape[0], self.c_dim)):
            raise ValueError(f"c must have shape [{z.shape[0]}, {self.c_dim}], got {None if c is None else c.shape}")
        x = normalize_2nd_moment(z.astype(jnp.float32))
        for idx in range(self.num_layers):
            act = "linear" if idx == self.num_layers - 1 else self.activation
            x = FullyConnectedLayer(self.z_dim, self.z_dim, activation=act, lr_multiplier=self.lr_multiplier,
                                    name=f"mlp.fc{idx}")(x)

        x_avg = self.variable(BUFFERS, "x_avg", jnp.zeros, (self.z_dim,), jnp.float32)
        if self.x_avg_beta is not None and update_emas and self.is_mutable_collection(BUFFERS):
            batch_mean = jnp.mean(jax.lax.stop_gradient(x), axis=0)
            x_avg.value = batch_mean + (x_avg.value - batch_mean) * self.x_avg_beta

        num_ws = 1 if self.num_ws is None else self.num_ws
        xs = jnp.broadcast_to(x[:, None], (x.shape[0], num_ws, self.z_dim))
        if not is_unit(truncation_psi):
            if self.x_avg_beta is None:
                raise ValueError("truncation needs x_avg: x_avg_beta must be set")
            cutoff = num_ws if truncation_cutoff is None else truncation_cutoff
            truncated = x_avg.value + (xs[:, :cutoff] - x_avg.value) * truncation_psi
            xs = jnp.concatenate([truncated, xs[:, cutoff:]], axis=1)
        if self.c_dim > 0:
            cs = jnp.broadcast_to(c.astype(jnp.float32)[:, None], (x.shape[0], num_ws, self.c_dim))
            xs = jnp.concatenate([xs, cs], axis=2)
        return xs if self.num_ws is not None else xs[:, 0]


class Generator(GeneratorBase):
    """StyleGAN-T generator with the official constructor arguments; c is the (unit-length) CLIP text
    embedding [N, clip_dim] when `conditional`; images are NHWC."""

    z_dim: int
    conditional: bool
    img_resolution: int
    img_channels: int = 3
    train_mode: str = "all"  # official: which parts train; recorded only
    synthesis_kwargs: Mapping[str, Any] = FrozenDict()
    clip_dim: int = CLIP_TEXT_DIM  # width of the CLIP text embedding (official: read from its CLIP model)
    mapping_kwargs: Mapping[str, Any] = FrozenDict()
    compute_dtype: Any = None

    def __post_init__(self):
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(self.synthesis_kwargs).items()}
        object.__setattr__(self, "synthesis_kwargs", FrozenDict(kwargs))  # hashable, e.g. for jax.jit
        super().__post_init__()

    @property
    def c_dim(self) -> int:
        return self.clip_dim if self.conditional else 0

    @property
    def w_dim(self) -> int:
        return self.z_dim + self.c_dim

    @property
    def settings(self) -> FrozenDict:
        """The synthesis settings: synthesis_kwargs completed with the official defaults."""
        return FrozenDict(synthesis_settings(self.synthesis_kwargs))

    @property
    def num_ws(self) -> int:
        return num_ws_for(self.img_resolution, self.settings)

    def setup(self):
        self.synthesis_network = SynthesisNetwork(self.w_dim, self.img_resolution, self.img_channels,
                                                  settings=self.settings, compute_dtype=self.compute_dtype,
                                                  name="synthesis")
        self.mapping_network = MappingNetwork(self.z_dim, self.c_dim, num_ws=self.num_ws, name="mapping",
                                              **self.mapping_kwargs)

    def synthesis(self, ws: jax.Array, noise_mode: str = "const", fused_modconv: Any = None,
                  update_emas: bool = False) -> jax.Array:
        """ws [N, num_ws, w_dim] -> NHWC float32 images (unclamped, about [-1, 1])."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {ws.shape}")
        default = self.synthesis_network.settings["fused_modconv_default"]
        fused = (default if fused_modconv is None else fused_modconv) is True  # as the StyleGAN2 Generator
        return self.synthesis_network(ws, noise_mode=noise_mode, fused_modconv=fused, update_emas=update_emas)

    def __call__(self, z: jax.Array, c: jax.Array | None = None, truncation_psi: Any = 1.0,
                 truncation_cutoff: int | None = None, noise_mode: str = "const", update_emas: bool = False,
                 fused_modconv: Any = None) -> jax.Array:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, noise_mode=noise_mode, fused_modconv=fused_modconv, update_emas=update_emas)
