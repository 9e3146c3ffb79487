"""VGG16 as a Flax module (NHWC): the convolutions LPIPS taps, and the fc2 features of precision/recall.

Precision/recall weights are read from an .npz or a torch zip (state dict or TorchScript) under
torchvision's VGG16 names: `features.{0,2,5,7,10,12,14,17,19,21,24,26,28}.{weight,bias}` (OIHW)
and `classifier.{0,3}.{weight,bias}` ([out, in]); other tensors (e.g. `classifier.6`) are ignored.
The stage widths, the fc width and the input size are read from the file: fc1 takes the final
map of side input_size / 32 (7x7 at the real network's 224x224).
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.perceptual.resize import tf1_bilinear_resize

STAGE_DEPTHS = (2, 2, 3, 3, 3)           # 3x3 convs per stage; a 2x2 max-pool follows each stage
WIDTHS = (64, 128, 256, 512, 512)        # channels per stage of the real network
INPUT_SIZE = 224                         # of the real network; its last conv map is 7x7
DOWNSAMPLING = 2 ** len(STAGE_DEPTHS)
CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)   # torchvision's `features.N` of each conv
FC_INDICES = (0, 3)                      # torchvision's `classifier.N` of fc1 and fc2
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


class VGG16Taps(nn.Module):
    """VGG16 convolutions; returns relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3 (NHWC, before each pool)."""

    widths: Sequence[int] = WIDTHS

    @nn.compact
    def __call__(self, x: jax.Array) -> list[jax.Array]:
        taps, index = [], 0
        for stage, (width, depth) in enumerate(zip(self.widths, STAGE_DEPTHS)):
            if stage:
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
            for _ in range(depth):
                x = nn.relu(nn.Conv(width, (3, 3), padding=1, precision=jax.lax.Precision.HIGHEST,
                                    name=f"Conv_{index}")(x))
                index += 1
            taps.append(x)
        return taps


class VGG16FC2(nn.Module):
    """VGG16 up to fc2 after its ReLU: `preprocess`ed NHWC [N, input_size, input_size, 3] -> [N, fc_width].

    Flattening is NHWC; `vgg16_params` reorders torchvision's fc1 weight (which expects the NCHW
    flattening of the final map) to match.
    """

    widths: Sequence[int] = WIDTHS
    fc_width: int = 4096
    input_size: int = INPUT_SIZE

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.max_pool(VGG16Taps(self.widths, name="features")(x)[-1], (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        for name in ("fc1", "fc2"):
            x = nn.relu(nn.Dense(self.fc_width, precision=jax.lax.Precision.HIGHEST, name=name)(x))
        return x


def preprocess(images: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
    """uint8 NHWC RGB -> Keras 'caffe' input: resized to size x size (TF1 bilinear), BGR, minus the BGR mean."""
    x = tf1_bilinear_resize(images.astype(jnp.float32), size, size)
    return x[..., ::-1] - jnp.asarray(CAFFE_BGR_MEAN, jnp.float32)


def _tensor(tensors: dict[str, np.ndarray], name: str, shape: tuple[int, ...]) -> np.ndarray:
    value = np.asarray(tensors[name], np.float32)
    if value.shape != shape:
        raise ValueError(f"VGG16 weights: {name} has shape {value.shape}, expected {shape}")
    return value


def _dim(tensors: dict[str, np.ndarray], name: str, axis: int) -> int:
    # A size to derive the architecture from; _tensor reports a tensor of the wrong rank.
    shape = np.shape(tensors[name])
    return int(shape[axis]) if shape else 0


def vgg16_params(tensors: dict[str, np.ndarray], source: str = "VGG16 weights") -> tuple[VGG16FC2, dict]:
    """The module and its Flax params from torchvision-named tensors (see the module docstring)."""
    names = [f"features.{i}.{p}" for i in CONV_INDICES for p in ("weight", "bias")]
    names += [f"classifier.{i}.{p}" for i in FC_INDICES for p in ("weight", "bias")]
    missing = [name for name in names if name not in tensors]
    if missing:
        raise ValueError(f"{source}: missing tensor(s) {', '.join(missing)} (torchvision VGG16 names expected)")
    widths = [_dim(tensors, f"features.{CONV_INDICES[sum(STAGE_DEPTHS[:s])]}.weight", 0)
              for s in range(len(STAGE_DEPTHS))]
    fc_width = _dim(tensors, "classifier.3.weight", 0)
    convs, in_channels = {}, 3
    for index, width in enumerate(w for w, depth in zip(widths, STAGE_DEPTHS) for _ in range(depth)):
        prefix = f"features.{CONV_INDICES[index]}"
        kernel = _tensor(tensors, f"{prefix}.weight", (width, in_channels, 3, 3))
        convs[f"Conv_{index}"] = {"kernel": kernel.transpose(2, 3, 1, 0),
                                  "bias": _tensor(tensors, f"{prefix}.bias", (width,))}
        in_channels = width
    side = max(math.isqrt(_dim(tensors, "classifier.0.weight", -1) // max(in_channels, 1)), 1)
    # fc1's inputs are ordered (C, H, W) in torchvision; our flattening is (H, W, C).
    fc1 = _tensor(tensors, "classifier.0.weight", (fc_width, in_channels * side * side))
    fc1 = fc1.reshape(fc_width, in_channels, side, side).transpose(2, 3, 1, 0).reshape(-1, fc_width)
    params = {
        "features": convs,
        "fc1": {"kernel": fc1, "bias": _tensor(tensors, "classifier.0.bias", (fc_width,))},
        "fc2": {"kernel": _tensor(tensors, "classifier.3.weight", (fc_width, fc_width)).T,
                "bias": _tensor(tensors, "classifier.3.bias", (fc_width,))},
    }
    return VGG16FC2(tuple(widths), fc_width, side * DOWNSAMPLING), params
