"""EfficientNet-Lite as a Flax module (NHWC), laid out like timm's `tf_efficientnet_lite*` models.

The network is a stride-2 stem convolution followed by seven stages of blocks: depthwise-separable
blocks (depthwise conv, pointwise conv) and inverted residuals (pointwise expansion, depthwise conv,
pointwise projection), each convolution followed by batch norm in inference mode and, except for a
block's last one, ReLU6. Lite variants have no squeeze-excitation. Convolutions pad like TensorFlow's
'SAME' (asymmetric, computed from the input size), as timm's `tf_` ports do.

Module and parameter names mirror timm's state dict (`conv_stem`, `bn1`, `blocks.<stage>.<block>.conv_dw`
becomes `blocks_<stage>_<block>/conv_dw`), so that a loader can map tensors by name.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

BN_EPSILON = 1e-3  # TensorFlow's default, which timm's tf_ ports keep
STEM_CHANNELS = 32


class StageSpec(NamedTuple):
    """One stage of the reference definition: `repeats` blocks of one kind; only the first one strides."""

    kind: str        # 'ds': depthwise-separable, 'ir': inverted residual
    repeats: int
    kernel: int      # of the depthwise convolution
    stride: int
    expansion: int   # inverted residuals' channel expansion of their input
    channels: int    # output channels before width scaling


# EfficientNet-Lite's stages at width and depth multipliers 1.0 (efficientnet-lite0).
LITE_STAGES = (
    StageSpec("ds", 1, 3, 1, 1, 16),
    StageSpec("ir", 2, 3, 2, 6, 24),
    StageSpec("ir", 2, 5, 2, 6, 40),
    StageSpec("ir", 3, 3, 2, 6, 80),
    StageSpec("ir", 3, 5, 1, 6, 112),
    StageSpec("ir", 4, 5, 2, 6, 192),
    StageSpec("ir", 1, 3, 1, 6, 320),
)

# (width multiplier, depth multiplier) of each variant; the stem, the first and the last stage are not scaled.
LITE_MULTIPLIERS = {
    "lite0": (1.0, 1.0),
    "lite1": (1.0, 1.1),
    "lite2": (1.1, 1.2),
    "lite3": (1.2, 1.4),
    "lite4": (1.4, 1.8),
}


class BlockConfig(NamedTuple):
    """One resolved block: its kind, channel counts, depthwise kernel size and stride."""

    kind: str
    in_channels: int
    mid_channels: int  # the expanded width of an inverted residual; in_channels for depthwise-separable
    out_channels: int
    kernel: int
    stride: int


def make_divisible(value: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    """`value` rounded to the nearest multiple of `divisor` (at least `divisor`), never below round_limit * value."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < round_limit * value else rounded


def lite_stages(width: float = 1.0, depth: float = 1.0,
                stages: Sequence[StageSpec] = LITE_STAGES) -> tuple[tuple[BlockConfig, ...], ...]:
    """The blocks of each stage of EfficientNet-Lite at the given width and depth multipliers."""
    resolved, in_channels = [], STEM_CHANNELS
    for index, spec in enumerate(stages):
        fixed = index in (0, len(stages) - 1)
        repeats = spec.repeats if fixed else int(math.ceil(spec.repeats * depth))
        out_channels = make_divisible(spec.channels * width)
        blocks = []
        for b in range(repeats):
            mid = in_channels if spec.kind == "ds" else make_divisible(in_channels * spec.expansion)
            blocks.append(BlockConfig(spec.kind, in_channels, mid, out_channels, spec.kernel,
                                      spec.stride if b == 0 else 1))
            in_channels = out_channels
        resolved.append(tuple(blocks))
    return tuple(resolved)


def feature_stages(stages: Sequence[Sequence[BlockConfig]]) -> tuple[int, ...]:
    """Indices of the stages whose output is a feature map: those followed by a stride, and the last."""
    return tuple(i for i in range(len(stages))
                 if i == len(stages) - 1 or stages[i + 1][0].stride > 1)


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) of one spatial axis; the odd pixel goes after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv(nn.Module):
    """Bias-free convolution with TensorFlow 'SAME' padding; depthwise when `depthwise`. Kernel HWIO."""

    features: int
    kernel: int
    stride: int = 1
    depthwise: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        groups = x.shape[-1] if self.depthwise else 1
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (self.kernel, self.kernel, x.shape[-1] // groups, self.features))
        padding = [tf_same_padding(n, self.kernel, self.stride) for n in x.shape[1:3]]
        return jax.lax.conv_general_dilated(
            x, kernel.astype(x.dtype), (self.stride, self.stride), padding,
            dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups,
            precision=jax.lax.Precision.HIGHEST)


def _batch_norm(name: str, epsilon: float) -> nn.BatchNorm:
    # Inference mode: running statistics (collection 'batch_stats') and affine parameters.
    return nn.BatchNorm(use_running_average=True, epsilon=epsilon, name=name)


class EfficientNetBlock(nn.Module):
    """A depthwise-separable block or an inverted residual, with its residual when shapes allow."""

    config: BlockConfig
    bn_epsilon: float = BN_EPSILON

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c, eps = self.config, self.bn_epsilon
        shortcut = x
        if c.kind == "ir":
            x = SameConv(c.mid_channels, 1, name="conv_pw")(x)
            x = nn.relu6(_batch_norm("bn1", eps)(x))
            x = SameConv(c.mid_channels, c.kernel, c.stride, depthwise=True, name="conv_dw")(x)
            x = nn.relu6(_batch_norm("bn2", eps)(x))
            x = _batch_norm("bn3", eps)(SameConv(c.out_channels, 1, name="conv_pwl")(x))
        elif c.kind == "ds":
            x = SameConv(c.in_channels, c.kernel, c.stride, depthwise=True, name="conv_dw")(x)
            x = nn.relu6(_batch_norm("bn1", eps)(x))
            x = _batch_norm("bn2", eps)(SameConv(c.out_channels, 1, name="conv_pw")(x))
        else:
            raise ValueError(f"unknown EfficientNet block kind {c.kind!r} (expected 'ds' or 'ir')")
        if c.stride == 1 and c.in_channels == c.out_channels:
            x = x + shortcut
        return x


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite trunk: NHWC images -> the feature maps of timm's `features_only` model.

    Returns one NHWC map per stage in `feature_stages(stages)`: for lite0 five maps of 16, 24, 40,
    112 and 320 channels at 1/2, 1/4, 1/8, 1/16 and 1/32 of the input size (rounded up). The images
    must already be normalised as the weights expect (mean = std = 0.5 for timm's tf_ ports).
    """

    stages: tuple[tuple[BlockConfig, ...], ...] = lite_stages()
    stem_channels: int = STEM_CHANNELS
    bn_epsilon: float = BN_EPSILON

    @nn.compact
    def __call__(self, images: jax.Array) -> list[jax.Array]:
        x = SameConv(self.stem_channels, 3, 2, name="conv_stem")(jnp.asarray(images, jnp.float32))
        x = nn.relu6(_batch_norm("bn1", self.bn_epsilon)(x))
        taps, wanted = [], set(feature_stages(self.stages))
        for s, blocks in enumerate(self.stages):
            for b, config in enumerate(blocks):
                x = EfficientNetBlock(config, self.bn_epsilon, name=f"blocks_{s}_{b}")(x)
            if s in wanted:
                taps.append(x)
        return taps
