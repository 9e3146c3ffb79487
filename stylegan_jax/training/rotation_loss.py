"""The self-supervised rotation loss of SS-GAN (Chen et al. 2019, "Self-Supervised GANs via Auxiliary
Rotation Loss") as pure functions.

D carries a 4-way classifier on its final features (the discriminators' `rotation_classes=4`). Some
images of a batch are each rotated by 0, 90, 180 and 270 degrees; D minimises the classifier's
cross-entropy on rotated reals (weight beta), G minimises it on its rotated fakes (weight alpha), as
in the paper and its compare_gan code (`weight_rotation_loss_d=1.0`, `weight_rotation_loss_g=0.2`).
The rotation is applied to the images D sees (after blur and augmentation), so that its label
describes D's input.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

ROTATIONS = 4  # 0, 90, 180 and 270 degrees
PAPER_ALPHA, PAPER_BETA = 0.2, 1.0  # the paper's weights of G's and D's terms


@dataclasses.dataclass(frozen=True)
class RotationConfig:
    """alpha: G's weight on rotated fakes; beta: D's weight on rotated reals (both 0: off, the default;
    the paper's are PAPER_ALPHA, PAPER_BETA); examples: images of a batch rotated by all four angles
    (0: a quarter of the batch, so D classifies as many rotated images as the batch holds)."""

    alpha: float = 0.0
    beta: float = 0.0
    examples: int = 0

    @property
    def active(self) -> bool:
        """Whether either network has a rotation term (D then needs its rotation head)."""
        return self.alpha != 0 or self.beta != 0

    def num_examples(self, batch: int) -> int:
        """How many images of a batch of `batch` are rotated."""
        return min(self.examples or max(batch // ROTATIONS, 1), batch)


def select_examples(x: jax.Array, count: int) -> jax.Array:
    """`count` evenly spaced rows of x (every (N // count)-th, from the first): under jit a batch
    sharded over devices gives each device's share of them where it can, without a host round trip."""
    stride = x.shape[0] // count
    return x[:stride * count:stride]


def rotated_copies(images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Each NHWC image turned counter-clockwise by k * 90 degrees for k = 0..3 (jnp.rot90 over H and W):
    [4N, H, W, C], an image's four copies adjacent, and their labels k, [4N] int32. Needs H == W."""
    if images.shape[1] != images.shape[2]:
        raise ValueError(f"rotating by 90 degrees needs square images, got {images.shape[1]}x{images.shape[2]}")
    rotated = jnp.stack([jnp.rot90(images, k, axes=(1, 2)) for k in range(ROTATIONS)], axis=1)
    labels = jnp.tile(jnp.arange(ROTATIONS, dtype=jnp.int32), images.shape[0])
    return rotated.reshape(-1, *images.shape[1:]), labels


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of logits [M, K] against integer labels [M], in float32."""
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=-1))


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """The fraction of rows whose largest logit is at their label."""
    return jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))
