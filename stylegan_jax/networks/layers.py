"""Layers shared by the StyleGAN2 and StyleGAN3 networks: equalised-lr dense layer and mapping."""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.core import FrozenDict

from stylegan_jax.ops.bias_act import ACTIVATIONS, bias_act
from stylegan_jax.ops.conv2d_resample import conv2d_resample
from stylegan_jax.ops.filters import setup_filter
from stylegan_jax.ops.normalization import normalize_2nd_moment

BUFFERS = "buffers"


def is_unit(value) -> bool:
    """True when `value` is the Python number 1 (a traced value never is)."""
    return isinstance(value, (int, float)) and value == 1


class FullyConnectedLayer(nn.Module):
    """Dense layer with equalised learning rate; `weight` is stored [out, in] like the official one."""

    in_features: int
    out_features: int
    activation: str = "linear"
    bias: bool = True
    lr_multiplier: float = 1.0
    weight_init: float = 1.0
    bias_init: float | Sequence[float] = 0.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"{self.name}: expected {self.in_features} input features, got {x.shape}")
        weight = self.param(
            "weight", lambda key: jax.random.normal(key, (self.out_features, self.in_features))
            * (self.weight_init / self.lr_multiplier))
        w = weight.astype(x.dtype) * np.float32(self.lr_multiplier / np.sqrt(self.in_features))
        b = None
        if self.bias:
            init = np.broadcast_to(np.asarray(self.bias_init, np.float32), [self.out_features])
            b = self.param("bias", lambda key: jnp.asarray(init / self.lr_multiplier))
            b = b.astype(x.dtype)
            if self.lr_multiplier != 1:
                b = b * np.float32(self.lr_multiplier)
        x = x @ w.T
        return bias_act(x, b, act=self.activation)


class MappingNetwork(nn.Module):
    """Maps z (and an optional label c) to `num_ws` copies of w, tracking w_avg for truncation."""

    z_dim: int
    c_dim: int
    w_dim: int
    num_ws: int | None
    num_layers: int = 8
    embed_features: int | None = None
    layer_features: int | None = None
    activation: str = "lrelu"
    lr_multiplier: float = 0.01
    w_avg_beta: float | None = 0.998

    @nn.compact
    def __call__(self, z: jax.Array | None, c: jax.Array | None, truncation_psi: Any = 1.0,
                 truncation_cutoff: int | None = None, update_emas: bool = False) -> jax.Array:
        embed_features = self.w_dim if self.embed_features is None else self.embed_features
        embed_features = embed_features if self.c_dim > 0 else 0
        layer_features = self.w_dim if self.layer_features is None else self.layer_features
        features = [self.z_dim + embed_features] + [layer_features] * (self.num_layers - 1) + [self.w_dim]

        parts = []
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"z must have shape [N, {self.z_dim}], got {None if z is None else z.shape}")
            parts.append(normalize_2nd_moment(z.astype(jnp.float32)))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f"c must have shape [N, {self.c_dim}], got {None if c is None else c.shape}")
            y = FullyConnectedLayer(self.c_dim, embed_features, name="embed")(c.astype(jnp.float32))
            parts.append(normalize_2nd_moment(y))
        x = jnp.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]

        for idx in range(self.num_layers):
            x = FullyConnectedLayer(features[idx], features[idx + 1], activation=self.activation,
                                    lr_multiplier=self.lr_multiplier, name=f"fc{idx}")(x)

        track = self.num_ws is not None and self.w_avg_beta is not None
        if track:
            w_avg = self.variable(BUFFERS, "w_avg", jnp.zeros, (self.w_dim,), jnp.float32)
            if update_emas and self.is_mutable_collection(BUFFERS):
                batch_mean = jnp.mean(jax.lax.stop_gradient(x), axis=0)
                w_avg.value = batch_mean + (w_avg.value - batch_mean) * self.w_avg_beta
        if self.num_ws is None:
            return x
        x = jnp.broadcast_to(x[:, None, :], (x.shape[0], self.num_ws, self.w_dim))
        if not is_unit(truncation_psi):
            if not track:
                raise ValueError("truncation needs w_avg: num_ws and w_avg_beta must be set")
            x = truncate(x, w_avg.value, truncation_psi, truncation_cutoff)
        return x


def truncate(ws: jax.Array, w_avg: jax.Array, psi: Any, cutoff: int | None) -> jax.Array:
    """The truncation trick: the first `cutoff` ws (all if None) moved towards w_avg by psi."""
    cutoff = ws.shape[1] if cutoff is None else cutoff
    truncated = w_avg + (ws[:, :cutoff] - w_avg) * psi
    return jnp.concatenate([truncated, ws[:, cutoff:]], axis=1)


def resample_filter_buffer(module: nn.Module, taps: Sequence[float]) -> jax.Array | np.ndarray:
    """Registers the module's 'resample_filter' buffer (the official 2-D FIR kernel) and returns the
    filter to compute with: for 1-D taps, the same kernel as separable constant taps (two 1-D passes
    instead of one 2-D pass, like the buffer a function of the constructor's taps only)."""
    kernel = module.variable(BUFFERS, "resample_filter", lambda: jnp.asarray(setup_filter(taps))).value
    return setup_filter(taps, separable=True) if np.ndim(taps) == 1 else kernel


def compute_dtype_for(use_low_precision: bool, compute_dtype: Any) -> Any:
    """The dtype of a block: `compute_dtype` where the official code would use FP16, else float32."""
    return jnp.dtype(compute_dtype) if use_low_precision and compute_dtype is not None else jnp.float32


class Conv2dLayer(nn.Module):
    """Equalised-lr conv with optional FIR up/down-sampling, bias, activation and clamp (OIHW weight)."""

    in_channels: int
    out_channels: int
    kernel_size: int
    bias: bool = True
    activation: str = "linear"
    up: int = 1
    down: int = 1
    resample_filter: Sequence[float] = (1, 3, 3, 1)
    conv_clamp: float | None = None

    @nn.compact
    def __call__(self, x: jax.Array, gain: float = 1.0) -> jax.Array:
        k = self.kernel_size
        weight = self.param("weight", jax.random.normal, (self.out_channels, self.in_channels, k, k))
        b = self.param("bias", nn.initializers.zeros, (self.out_channels,)) if self.bias else None
        f = resample_filter_buffer(self, self.resample_filter)
        w = weight * np.float32(1 / np.sqrt(self.in_channels * k * k))
        x = conv2d_resample(x, w.astype(x.dtype), f=f, up=self.up, down=self.down, padding=k // 2,
                            flip_weight=self.up == 1)
        act_gain = ACTIVATIONS[self.activation].default_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=act_gain, clamp=act_clamp)


class AcceptsChannelsLastFlag(nn.Module):
    """Base of the modules whose official constructors take `fp16_channels_last` (the StyleGAN2
    generator through its synthesis kwargs, discriminator blocks through block_kwargs).

    The flag only picks PyTorch's memory format for float16 layers. Arrays here are always NHWC, so
    it is accepted, because official pickles may record it, and has no effect.
    """

    fp16_channels_last: bool = dataclasses.field(default=False, kw_only=True)


class GeneratorBase(nn.Module):
    """What the StyleGAN2 and StyleGAN3 generators share: frozen mapping kwargs, the mapping
    method and example inputs. Subclasses define `mapping_network` (named 'mapping') in setup."""

    def __post_init__(self):
        # Frozen, so that the module stays hashable (e.g. as a static argument of jax.jit).
        object.__setattr__(self, "mapping_kwargs", FrozenDict(self.mapping_kwargs))
        super().__post_init__()

    def mapping(self, z: jax.Array, c: jax.Array | None, truncation_psi: Any = 1.0,
                truncation_cutoff: int | None = None, update_emas: bool = False) -> jax.Array:
        """Maps z [N, z_dim] (and label c [N, c_dim]) to truncated ws [N, num_ws, w_dim]."""
        return self.mapping_network(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                                    update_emas=update_emas)

    @nn.nowrap
    def example_inputs(self, batch: int = 1) -> tuple[jax.Array, jax.Array]:
        """Zero latents and labels of the right shapes, e.g. for `init`."""
        return jnp.zeros((batch, self.z_dim), jnp.float32), jnp.zeros((batch, self.c_dim), jnp.float32)


def takes_transform(G: nn.Module) -> bool:
    """Whether the generator's synthesis accepts an input transform (StyleGAN3 does, StyleGAN2 does not)."""
    return "transform" in inspect.signature(type(G).synthesis).parameters


def check_rotation_head(D: nn.Module, rotation: bool) -> None:
    """Raises ValueError when a discriminator call asks for rotation logits that it has no head for."""
    if rotation and not D.rotation_classes:
        raise ValueError(f"{type(D).__name__}: rotation=True needs the discriminator built with rotation_classes > 0")
