"""EQ-T (integer), EQ-T_frac and EQ-R: PSNR between transformed outputs and transformed images."""
from __future__ import annotations

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.eval import eq_ops
from stylegan_jax.eval.sampling import latents_and_labels

# (z, c, transform [3, 3]) -> images NHWC in [-1, 1]; the transform is applied to the synthesis input
# (StyleGAN3's `synthesis.input.transform`); identity must reproduce the untransformed image.
Render = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
EQ_KINDS = ("int", "frac", "rot")


def masked_squared_error(ref: jax.Array, img: jax.Array, mask: jax.Array) -> tuple[float, float]:
    """(sum of mask * (ref - img)^2, sum of mask), summed in float64."""
    sq = np.asarray((ref - img) ** 2 * mask, np.float32).astype(np.float64).sum()
    return float(sq), float(np.asarray(mask, np.float32).astype(np.float64).sum())


def psnr(squared_error_sum: float, mask_sum: float) -> float:
    """PSNR in dB of images with range 2 ([-1, 1]) from summed masked squared error (inf when exact)."""
    if mask_sum <= 0:
        raise ValueError("PSNR over an empty mask: no pixel is valid after the transformation")
    if squared_error_sum == 0:
        return math.inf
    return 20 * math.log10(2) - 10 * math.log10(squared_error_sum / mask_sum)


def masked_psnr(ref: jax.Array, img: jax.Array, mask: jax.Array) -> float:
    """PSNR in dB over the pixels where mask is 1."""
    return psnr(*masked_squared_error(ref, img, mask))


@functools.partial(jax.jit, static_argnames="kind")
def _compare(kind: str, orig: jax.Array, img: jax.Array, param: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    # (reference, image, mask) to compare: the transformed original against the generator's output
    # (for EQ-R, against its pseudo-rotation, with the product of both masks).
    if kind == "rot":
        ref, ref_mask = eq_ops.fractional_rotation(orig, param)
        img, img_mask = eq_ops.fractional_pseudo_rotation(img, param)
        return ref, img, ref_mask * img_mask
    op = eq_ops.integer_translation if kind == "int" else eq_ops.fractional_translation
    ref, mask = op(orig, param[0], param[1])
    return ref, img, mask


def equivariance_psnr(render: Render, z_dim: int, c_dim: int, kind: str, num_samples: int, key: jax.Array,
                      labels: np.ndarray | None = None, batch_size: int = 4, translate_max: float = 0.125,
                      rotate_max: float = 1.0) -> float:
    """EQ-T (kind 'int'), EQ-T_frac ('frac') or EQ-R ('rot') PSNR in dB, as the official metric samples it."""
    if kind not in EQ_KINDS:
        raise ValueError(f"equivariance kind must be one of {EQ_KINDS}, got {kind!r}")
    sq_total = mask_total = 0.0
    for _ in range(0, num_samples, batch_size):
        key, key_zc, key_t = jax.random.split(key, 3)
        z, c = latents_and_labels(key_zc, z_dim, c_dim, labels, batch_size)
        orig = render(z, c, jnp.eye(3))
        if kind == "rot":
            param = (jax.random.uniform(key_t, ()) * 2 - 1) * (rotate_max * np.pi)
            transform = eq_ops.rotation_matrix(-param)
        else:
            param = (jax.random.uniform(key_t, (2,)) * 2 - 1) * translate_max
            if kind == "int":
                param = jnp.round(param * orig.shape[1]) / orig.shape[1]
            transform = jnp.eye(3).at[:2, 2].set(-param)
        sq, m = masked_squared_error(*_compare(kind, orig, render(z, c, transform), param))
        sq_total += sq
        mask_total += m
    return psnr(sq_total, mask_total)
