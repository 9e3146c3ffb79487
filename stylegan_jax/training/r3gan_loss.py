"""R3GAN's objective as pure functions: the relativistic pairing loss (RpGAN) with R1 and R2.

Sample n of the generated batch is paired with sample n of the real batch. A critic is a function
from un-augmented NHWC images to logits [N]: D with its parameters and labels bound, and with
augmentation (if any) applied inside it, so that R1 and R2 are gradients with respect to the
un-augmented images, through the augmentation (`critic` builds one). Real and generated images
get a critic each, so that each can carry its own augmentation draws.

Both losses are batch means, as the official trainer's (its per-device `Scale` is 1 when the mean
runs over the global batch). The penalties are taken every step (no lazy regularisation).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

Critic = Callable[[jax.Array], jax.Array]


def critic(discriminate: Callable[[jax.Array, Any], jax.Array], c: Any = None,
           augment: Callable[[jax.Array], jax.Array] | None = None) -> Critic:
    """The critic x -> discriminate(augment(x), c); `augment` runs in float32, as the official one."""
    if augment is None:
        return lambda images: discriminate(images, c)
    return lambda images: discriminate(augment(images.astype(jnp.float32)).astype(images.dtype), c)


def relativistic_loss(logits: jax.Array, opposing_logits: jax.Array) -> jax.Array:
    """Per-sample softplus(-(logits - opposing_logits)): small when each sample outscores its partner."""
    return jax.nn.softplus(-(logits - opposing_logits))


def logits_and_input_gradients(score: Critic, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(logits [N], d sum(logits) / d images) from one forward pass; the gradient stays differentiable."""
    def total(x):
        logits = score(x)
        return jnp.sum(logits), logits

    input_grads, logits = jax.grad(total, has_aux=True)(images)
    return logits, input_grads


def squared_norms(grads: jax.Array) -> jax.Array:
    """Per-sample squared Euclidean norms over every axis but the first: the zero-centred penalty."""
    return jnp.sum(jnp.square(grads), axis=tuple(range(1, grads.ndim)))


class DiscriminatorTerms(NamedTuple):
    """Per-sample quantities of the discriminator phase."""

    adversarial: jax.Array  # softplus(-(real_logits - fake_logits))
    relativistic_logits: jax.Array  # real_logits - fake_logits
    r1: jax.Array  # squared norm of the real images' input gradient
    r2: jax.Array  # squared norm of the generated images' input gradient
    real_logits: jax.Array
    fake_logits: jax.Array
    real_input_grads: jax.Array  # d sum(real_logits) / d real images
    fake_input_grads: jax.Array  # d sum(fake_logits) / d generated images


def discriminator_loss(score_real: Critic, score_fake: Critic, real_images: jax.Array, fake_images: jax.Array,
                       gamma: Any) -> tuple[jax.Array, DiscriminatorTerms]:
    """D's loss mean_n [softplus(-(r_n - f_n)) + gamma/2 (R1_n + R2_n)] and its terms.

    Generated images are constants here (no gradient reaches G); the gradient of the loss with
    respect to D's parameters includes the second-order terms of the penalties.
    """
    real_logits, real_grads = logits_and_input_gradients(score_real, jax.lax.stop_gradient(real_images))
    fake_logits, fake_grads = logits_and_input_gradients(score_fake, jax.lax.stop_gradient(fake_images))
    r1, r2 = squared_norms(real_grads), squared_norms(fake_grads)
    adversarial = relativistic_loss(real_logits, fake_logits)
    loss = jnp.mean(adversarial + (gamma / 2) * (r1 + r2))
    return loss, DiscriminatorTerms(adversarial, real_logits - fake_logits, r1, r2, real_logits, fake_logits,
                                    real_grads, fake_grads)


class GeneratorTerms(NamedTuple):
    """Per-sample quantities of the generator phase."""

    adversarial: jax.Array  # softplus(-(fake_logits - real_logits))
    relativistic_logits: jax.Array  # fake_logits - real_logits


def generator_loss(score_real: Critic, score_fake: Critic, real_images: jax.Array,
                   fake_images: jax.Array) -> tuple[jax.Array, GeneratorTerms]:
    """G's loss mean_n softplus(-(f_n - r_n)): the real logits enter it, as constants of G."""
    real_logits = score_real(jax.lax.stop_gradient(real_images))
    fake_logits = score_fake(fake_images)
    adversarial = relativistic_loss(fake_logits, real_logits)
    return jnp.mean(adversarial), GeneratorTerms(adversarial, fake_logits - real_logits)
