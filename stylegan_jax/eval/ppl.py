"""Perceptual Path Length of a generator (StyleGAN's PPL, as the official ppl2_wend computes it), with its math:
spherical interpolation and the trimmed mean."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.eval.inputs import latents_and_labels

Mapping = Callable[[jax.Array, jax.Array], jax.Array]          # (z, c) -> ws [N, num_ws, w_dim]
Synthesis = Callable[[jax.Array, jax.Array], jax.Array]        # (ws, noise_key) -> images NHWC in [-1, 1]
Distance = Callable[[jax.Array, jax.Array], jax.Array]         # (img0, img1) -> [N], e.g. LPIPS


def _normalize(x: jax.Array) -> jax.Array:
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def slerp(a: jax.Array, b: jax.Array, t: jax.Array) -> jax.Array:
    """Spherical interpolation between the directions of a and b ([..., D]); t broadcasts as [..., 1]."""
    a, b = _normalize(a), _normalize(b)
    d = jnp.sum(a * b, axis=-1, keepdims=True)
    p = t * jnp.arccos(d)
    c = _normalize(b - d * a)
    return _normalize(a * jnp.cos(p) + c * jnp.sin(p))


def trimmed_mean(dist: np.ndarray) -> float:
    """Mean of the values between the 1st ('lower') and 99th ('higher') percentiles, as the official PPL."""
    dist = np.asarray(dist)
    if dist.ndim != 1 or dist.size == 0:
        raise ValueError(f"PPL distances must be a non-empty vector, got shape {dist.shape}")
    lo = np.percentile(dist, 1, method="lower")
    hi = np.percentile(dist, 99, method="higher")
    return float(dist[(dist >= lo) & (dist <= hi)].mean())


def _prepare_for_lpips(img: jax.Array, crop: bool) -> jax.Array:
    # Optional face crop, box-downsampling of large images to 256, grayscale -> RGB.
    resolution = img.shape[1]
    if crop:
        if img.shape[1] != img.shape[2]:
            raise ValueError(f"PPL crop needs square images, got {img.shape[1]}x{img.shape[2]}")
        c = resolution // 8
        img = img[:, c * 3:c * 7, c * 2:c * 6, :]
    factor = resolution // 256
    if factor > 1:
        n, h, w, ch = img.shape
        img = img.reshape(n, h // factor, factor, w // factor, factor, ch).mean(axis=(2, 4))
    if img.shape[-1] == 1:
        img = jnp.repeat(img, 3, axis=-1)
    return img


def ppl_distances(mapping: Mapping, synthesis: Synthesis, distance: Distance, z_dim: int, c_dim: int,
                  num_samples: int, key: jax.Array, labels: np.ndarray | None = None, epsilon: float = 1e-4,
                  space: str = "w", sampling: str = "end", crop: bool = False, batch_size: int = 2) -> np.ndarray:
    """distance(G(t), G(t + epsilon)) / epsilon^2 along `num_samples` random latent paths: float32 [num_samples].

    The PPL value is `trimmed_mean` of these distances.
    """
    if space not in ("z", "w") or sampling not in ("full", "end"):
        raise ValueError(f"PPL space must be 'z' or 'w' and sampling 'full' or 'end', got {space!r}, {sampling!r}")
    out = []
    for _ in range(0, num_samples, batch_size):
        key, key_zc, key_z1, key_t, key_noise = jax.random.split(key, 5)
        z0, c = latents_and_labels(key_zc, z_dim, c_dim, labels, batch_size)
        z1 = jax.random.normal(key_z1, z0.shape)
        t = jax.random.uniform(key_t, (batch_size,)) * (1.0 if sampling == "full" else 0.0)
        if space == "w":
            w0, w1 = jnp.split(mapping(jnp.concatenate([z0, z1]), jnp.concatenate([c, c])), 2)
            t = t.reshape(-1, *([1] * (w0.ndim - 1)))
            ws = jnp.concatenate([w0 + (w1 - w0) * t, w0 + (w1 - w0) * (t + epsilon)])
        else:
            zt0, zt1 = slerp(z0, z1, t[:, None]), slerp(z0, z1, t[:, None] + epsilon)
            ws = mapping(jnp.concatenate([zt0, zt1]), jnp.concatenate([c, c]))
        img0, img1 = jnp.split(_prepare_for_lpips(synthesis(ws, key_noise), crop), 2)
        out.append(np.asarray(distance(img0, img1), np.float32) / np.float32(epsilon ** 2))
    return np.concatenate(out)[:num_samples]
