"""StyleGAN-T's CLIP guidance loss for the generator: the squared spherical distance between the CLIP
embedding of generated images and the caption's embedding.

Preprocessing as the official G phase: images wider than 64 pixels lose all but one random 64x64 crop
(one window for the whole batch, as torchvision's RandomCrop on a batch); an area resize to 224x224;
[-1, 1] -> [0, 1]; CLIP's normalisation. (The official CLIP wrapper then resizes bicubically to the
tower's input size, an identity for the 224-pixel ViT-L/14 and ViT-B/32 used here.)
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from stylegan_jax.ops.resize import area_resize
from stylegan_jax.perceptual.clip_image import clip_normalize

CROP_SIZE = 64
CLIP_SIZE = 224
NORM_EPS = 1e-12  # F.normalize's floor on the norm


def _normalize(x: jax.Array) -> jax.Array:
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), NORM_EPS)


def spherical_distance_loss(image_embed: jax.Array, text_embed: jax.Array) -> jax.Array:
    """arccos(<x / |x|, y / |y|>)^2 per row, [...]; the cosine is clipped to [-1, 1] against rounding
    (where the official arccos would give NaN)."""
    cosine = jnp.sum(_normalize(image_embed) * _normalize(text_embed), axis=-1)
    return jnp.square(jnp.arccos(jnp.clip(cosine, -1.0, 1.0)))


def clip_preprocess(images: jax.Array, key: jax.Array) -> jax.Array:
    """NHWC [-1, 1] generated images -> the CLIP-normalised 224x224 inputs the official G phase embeds."""
    n, height, width, channels = images.shape
    if width > CROP_SIZE:
        k_row, k_col = jax.random.split(key)
        row = jax.random.randint(k_row, (), 0, height - CROP_SIZE + 1)
        col = jax.random.randint(k_col, (), 0, width - CROP_SIZE + 1)
        images = jax.lax.dynamic_slice(images, (0, row, col, 0), (n, CROP_SIZE, CROP_SIZE, channels))
    images = area_resize(images.astype(jnp.float32), CLIP_SIZE, CLIP_SIZE)
    return clip_normalize((images + 1) / 2)


def clip_guidance_loss(image_fn: Callable[[jax.Array], jax.Array], images: jax.Array, text_embed: jax.Array,
                       key: jax.Array) -> jax.Array:
    """Mean over the batch of the spherical distance loss between `image_fn` (CLIP's image tower on
    normalised 224x224 NHWC inputs) of the preprocessed `images` and `text_embed` [N, D]; `key` draws the crop."""
    return jnp.mean(spherical_distance_loss(image_fn(clip_preprocess(images, key)), text_embed))
