"""Discriminator augmentation in training: the modes, and the official adaptive-p rule (ADA)."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from stylegan_jax.augment import AugmentSpec

MODES = ("ada", "fixed", "scheduled", "none")


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """How D's inputs are augmented: `mode` 'ada' (p adapts towards `target`), 'fixed' (p stays),
    'scheduled' (the trainer sets p at every step, as R3GAN's cosine schedule) or 'none'; `p` is the initial (or fixed) probability; every `interval` iterations ADA moves p by
    batch * interval / (kimg * 1000) up or down."""

    mode: str
    spec: AugmentSpec
    p: float
    target: float
    interval: int
    kimg: float

    @property
    def active(self) -> bool:
        """Whether images go through the pipeline (as the official loop: ADA, or a fixed p > 0)."""
        return self.mode in ("ada", "scheduled") or (self.mode == "fixed" and self.p > 0)


def no_augmentation() -> AugmentConfig:
    """The configuration of a run without augmentation."""
    return AugmentConfig(mode="none", spec=AugmentSpec(), p=0.0, target=0.6, interval=4, kimg=500.0)


def adjust_p(p: jax.Array, sign_sum: jax.Array, sign_count: jax.Array, target: float, batch_size: int,
             interval: int, kimg: float) -> jax.Array:
    """The official ADA step: p + sign(mean sign(D(real)) - target) * batch*interval/(kimg*1000), p >= 0.

    The mean is over every real logit reported since the last adjustment (main and R1 phases).
    """
    mean = sign_sum / jnp.maximum(sign_count, 1.0)
    step = jnp.float32(batch_size * interval / (kimg * 1000))
    return jnp.maximum(p + jnp.sign(mean - jnp.float32(target)) * step, 0.0).astype(jnp.float32)
