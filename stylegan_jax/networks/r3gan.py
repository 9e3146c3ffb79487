"""R3GAN generator and discriminator with the official constructor arguments; images are NHWC.

`Generator` and `Discriminator` take the keyword arguments of the official `training.networks`
wrappers (WidthPerStage, CardinalityPerStage, BlocksPerStage, ExpansionFactor, FP16Stages, c_dim,
img_resolution, ...) and hold the network under 'Model', so every parameter's dotted path is its
official state_dict name (e.g. 'Model.MainLayers.0.Layers.1.LinearLayer2.Layer.weight').
The stages listed in FP16Stages (negative indices count from the end) compute in `compute_dtype`
when it is given (the official code uses bfloat16); parameters stay float32 and outputs are float32.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.images import aspect_factors, image_size, short_side
from stylegan_jax.networks.layers import check_rotation_head, compute_dtype_for
from stylegan_jax.networks.r3gan_layers import (
    Convolution, DiscriminativeBasis, DownsampleLayer, GenerativeBasis, Linear, ResidualBlock, UpsampleLayer)

IMG_CHANNELS = 3


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """One stage: its residual blocks run at `width`; its transition layer maps between `width` and
    `other` (G: from the previous width or the input vector; D: to the next width or the output)."""

    width: int
    other: int
    cardinality: int
    num_blocks: int
    dtype: Any = jnp.float32


@dataclasses.dataclass(frozen=True)
class BlockSettings:
    """What every residual block and resampler of a network shares."""

    expansion_factor: int
    kernel_size: int
    total_blocks: int
    resampling_filter: tuple[float, ...]
    basis_shape: tuple[int, int] = (4, 4)  # (height, width) of the generative and discriminative bases


class Stage(nn.Module):
    """What both networks' stages share: a spec, the block settings and a run of residual blocks."""

    spec: StageSpec
    settings: BlockSettings

    @nn.nowrap
    def residual_blocks(self, x: jax.Array, first: int) -> jax.Array:
        """The stage's residual blocks, named Layers.<first>, Layers.<first + 1>, ..."""
        for i in range(self.spec.num_blocks):
            x = ResidualBlock(self.spec.width, self.spec.cardinality, self.settings.expansion_factor,
                              self.settings.kernel_size, self.settings.total_blocks, name=f"Layers.{first + i}")(x)
        return x


class GeneratorStage(Stage):
    """Layers.0: the generative basis (first stage) or upsampling; Layers.1..B: residual blocks."""

    first: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        spec = self.spec
        x = x.astype(spec.dtype)
        if self.first:
            x = GenerativeBasis(spec.other, spec.width, self.settings.basis_shape, name="Layers.0")(x)
        else:
            x = UpsampleLayer(spec.other, spec.width, self.settings.resampling_filter, name="Layers.0")(x)
        return self.residual_blocks(x, first=1)


class DiscriminatorStage(Stage):
    """Layers.0..B-1: residual blocks; Layers.B: downsampling or (last stage) the discriminative basis,
    which with `features` also returns the final features."""

    last: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, features: bool = False) -> jax.Array | tuple[jax.Array, jax.Array]:
        spec = self.spec
        x = self.residual_blocks(x.astype(spec.dtype), first=0)
        name = f"Layers.{spec.num_blocks}"
        if self.last:
            return DiscriminativeBasis(spec.width, spec.other, self.settings.basis_shape, name=name)(x, features)
        return DownsampleLayer(spec.width, spec.other, self.settings.resampling_filter, name=name)(x)


class Model(nn.Module):
    """What both networks share: their stages, block settings and label embedding size."""

    stages: tuple[StageSpec, ...]
    settings: BlockSettings
    c_dim: int
    embed_features: int
    remat: bool = False


class GeneratorModel(Model):
    """z (and the embedded label) -> basis at 4x4 (4 on the shorter side) -> stages doubling the resolution -> 1x1 conv to RGB."""

    @nn.compact
    def __call__(self, z: jax.Array, c: jax.Array | None) -> jax.Array:
        x = z
        if self.c_dim > 0:
            x = jnp.concatenate([z, Linear(self.c_dim, self.embed_features, name="EmbeddingLayer")(c)], axis=1)
        stage = nn.remat(GeneratorStage) if self.remat else GeneratorStage
        for i, spec in enumerate(self.stages):
            x = stage(spec, self.settings, first=i == 0, name=f"MainLayers.{i}")(x)
        return Convolution(self.stages[-1].width, IMG_CHANNELS, name="AggregationLayer")(x)


class DiscriminatorModel(Model):
    """1x1 conv from RGB -> stages halving the resolution -> basis to a score (or, conditional, to a
    vector whose inner product with the label's embedding is the score); with `features`, also returns
    the basis's features (float32)."""

    @nn.compact
    def __call__(self, img: jax.Array, c: jax.Array | None,
                 features: bool = False) -> jax.Array | tuple[jax.Array, jax.Array]:
        x = Convolution(IMG_CHANNELS, self.stages[0].width, name="ExtractionLayer")(img.astype(self.stages[0].dtype))
        stage = nn.remat(DiscriminatorStage, static_argnums=(2,)) if self.remat else DiscriminatorStage
        for i, spec in enumerate(self.stages):
            last = i == len(self.stages) - 1
            x = stage(spec, self.settings, last=last, name=f"MainLayers.{i}")(x, features and last)
        x, vector = x if features else (x, None)
        x = x.astype(jnp.float32)
        if self.c_dim > 0:
            embed = Linear(self.c_dim, self.embed_features, gain=1 / np.sqrt(self.embed_features),
                           name="EmbeddingLayer")(c)
            x = jnp.sum(x * embed, axis=1, keepdims=True)
        x = x.reshape(x.shape[0])
        return (x, vector.astype(jnp.float32)) if features else x


class R3GANArguments(nn.Module):
    """The constructor arguments both official wrappers share, their checks and derived settings."""

    WidthPerStage: Sequence[int]
    CardinalityPerStage: Sequence[int]
    BlocksPerStage: Sequence[int]
    ExpansionFactor: int
    FP16Stages: Sequence[int]
    c_dim: int
    img_resolution: int | tuple[int, int]  # one side, or (height, width): the bases take the aspect
    ConditionEmbeddingDimension: int = 0
    KernelSize: int = 3
    ResamplingFilter: Sequence[float] = (1, 2, 1)
    compute_dtype: Any = None
    remat: bool = False  # jax.checkpoint per stage: activations recomputed in the backward pass

    def __post_init__(self):
        # Tuples, so that the module stays hashable (e.g. as a static argument of jax.jit).
        for field in ("WidthPerStage", "CardinalityPerStage", "BlocksPerStage", "FP16Stages", "ResamplingFilter"):
            object.__setattr__(self, field, tuple(getattr(self, field)))
        super().__post_init__()

    @property
    def img_channels(self) -> int:
        return IMG_CHANNELS

    @nn.nowrap
    def block_settings(self) -> BlockSettings:
        """The shared block settings, after checking the per-stage lists and the resolution."""
        lists = (self.WidthPerStage, self.CardinalityPerStage, self.BlocksPerStage)
        if not self.WidthPerStage or len(set(map(len, lists))) != 1:
            raise ValueError("WidthPerStage, CardinalityPerStage and BlocksPerStage must be non-empty lists of "
                             f"the same length, got {[list(v) for v in lists]}")
        expected = 4 * 2 ** (len(self.WidthPerStage) - 1)
        if short_side(self.img_resolution) != expected:
            raise ValueError(f"img_resolution must be 4 * 2**(stages - 1) = {expected} for "
                             f"{len(self.WidthPerStage)} stages (on its shorter side), got {self.img_resolution}")
        for width, cardinality in zip(self.WidthPerStage, self.CardinalityPerStage):
            if cardinality < 1 or width * self.ExpansionFactor % cardinality:
                raise ValueError(f"cardinality {cardinality} does not divide the {width * self.ExpansionFactor} "
                                 f"expanded channels of a stage of width {width}")
        if (self.c_dim > 0) != (self.ConditionEmbeddingDimension > 0):
            raise ValueError("ConditionEmbeddingDimension must be positive exactly when c_dim is, got "
                             f"{self.ConditionEmbeddingDimension} with c_dim {self.c_dim}")
        basis = tuple(4 * factor for factor in aspect_factors(self.img_resolution))
        return BlockSettings(self.ExpansionFactor, self.KernelSize, sum(self.BlocksPerStage), self.ResamplingFilter,
                             basis)

    @nn.nowrap
    def stage_dtypes(self) -> list[Any]:
        """The compute dtype of each stage."""
        count = len(self.WidthPerStage)
        if any(not -count <= s < count for s in self.FP16Stages):
            raise ValueError(f"FP16Stages {list(self.FP16Stages)} must index the {count} stages")
        low = {s % count for s in self.FP16Stages}
        return [compute_dtype_for(s in low, self.compute_dtype) for s in range(count)]

    @nn.nowrap
    def stage_specs(self, others: Sequence[int]) -> tuple[StageSpec, ...]:
        """Every stage's spec; `others` are the other widths of their transition layers."""
        return tuple(StageSpec(*fields) for fields in zip(
            self.WidthPerStage, others, self.CardinalityPerStage, self.BlocksPerStage, self.stage_dtypes()))

    @nn.nowrap
    def check_labels(self, c: jax.Array | None, batch: int) -> None:
        """Raises ValueError unless c is [batch, c_dim] (or None without labels)."""
        if self.c_dim == 0 and (c is None or c.size == 0):
            return
        if c is None or c.shape != (batch, self.c_dim):
            raise ValueError(f"c must have shape [{batch}, {self.c_dim}], got {None if c is None else c.shape}")


class Generator(R3GANArguments):
    """R3GAN generator: z [N, NoiseDimension] (and one-hot c [N, c_dim]) -> NHWC images in about [-1, 1]."""

    NoiseDimension: int = dataclasses.field(kw_only=True)

    @property
    def z_dim(self) -> int:
        return self.NoiseDimension

    @nn.nowrap
    def example_inputs(self, batch: int = 1) -> tuple[jax.Array, jax.Array]:
        """Zero latents and labels of the right shapes, e.g. for `init`."""
        return jnp.zeros((batch, self.NoiseDimension), jnp.float32), jnp.zeros((batch, self.c_dim), jnp.float32)

    @nn.compact
    def __call__(self, z: jax.Array, c: jax.Array | None = None) -> jax.Array:
        settings = self.block_settings()
        if z.ndim != 2 or z.shape[1] != self.NoiseDimension:
            raise ValueError(f"z must have shape [N, {self.NoiseDimension}], got {z.shape}")
        self.check_labels(c, z.shape[0])
        stages = self.stage_specs([self.NoiseDimension + self.ConditionEmbeddingDimension, *self.WidthPerStage[:-1]])
        model = GeneratorModel(stages, settings, self.c_dim, self.ConditionEmbeddingDimension, self.remat, name="Model")
        return model(z.astype(jnp.float32), None if self.c_dim == 0 else c.astype(jnp.float32)).astype(jnp.float32)


class Discriminator(R3GANArguments):
    """R3GAN discriminator: NHWC images [N, R, R, 3] (and one-hot c [N, c_dim]) -> logits [N]."""

    rotation_classes: int = 0  # > 0: a linear 'rotation' head on the final features (SS-GAN); 0: none

    @nn.nowrap
    def example_inputs(self, batch: int = 1) -> tuple[jax.Array, jax.Array]:
        """Zero images and labels of the right shapes, e.g. for `init`."""
        shape = (batch, *image_size(self.img_resolution), IMG_CHANNELS)
        return jnp.zeros(shape, jnp.float32), jnp.zeros((batch, self.c_dim), jnp.float32)

    @nn.compact
    def __call__(self, img: jax.Array, c: jax.Array | None = None,
                 rotation: bool = False) -> jax.Array | tuple[jax.Array, jax.Array]:
        """Logits [N]; with `rotation`, also the rotation head's logits [N, rotation_classes]."""
        check_rotation_head(self, rotation)
        settings = self.block_settings()
        expected = (*image_size(self.img_resolution), IMG_CHANNELS)
        if img.ndim != 4 or img.shape[1:] != expected:
            raise ValueError(f"images must be NHWC of shape [N, {', '.join(map(str, expected))}], got {img.shape}")
        self.check_labels(c, img.shape[0])
        stages = self.stage_specs([*self.WidthPerStage[1:], self.ConditionEmbeddingDimension if self.c_dim > 0 else 1])
        model = DiscriminatorModel(stages, settings, self.c_dim, self.ConditionEmbeddingDimension, self.remat,
                                   name="Model")
        c = None if self.c_dim == 0 else c.astype(jnp.float32)
        if not self.rotation_classes:
            return model(img, c)
        logits, features = model(img, c, features=True)
        rotation_logits = Linear(self.WidthPerStage[-1], self.rotation_classes, name="rotation")(features)
        return (logits, rotation_logits) if rotation else logits
