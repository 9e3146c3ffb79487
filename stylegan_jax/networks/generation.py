"""Calling any generator of the project the same way: StyleGAN2/3 (with a w space) and R3GAN (without)."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax


def has_w_space(G: nn.Module) -> bool:
    """Whether G maps z to intermediate latents w and synthesises from them (StyleGAN), unlike R3GAN."""
    return callable(getattr(type(G), "mapping", None)) and callable(getattr(type(G), "synthesis", None))


def generate(G: nn.Module, variables: Any, z: jax.Array, c: jax.Array, noise_mode: str = "const") -> jax.Array:
    """G's NHWC images in about [-1, 1] for latents z and labels c; `noise_mode` reaches the
    generators that take per-layer noise (R3GAN has none)."""
    if has_w_space(G):
        return G.apply(variables, z, c, noise_mode=noise_mode)
    return G.apply(variables, z, c)


def require_w_space(G: nn.Module, what: str) -> None:
    """Raises a one-line ValueError when `what` needs w latents and G has none."""
    if not has_w_space(G):
        raise ValueError(f"{what} needs a generator with a w space (StyleGAN2/3); {type(G).__module__}."
                         f"{type(G).__name__} maps z straight to images")
