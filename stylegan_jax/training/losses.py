"""StyleGAN2/3 losses as pure functions: logistic GAN losses, R1, path length, blur, mixing."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.ops.upfirdn2d import filter2d


def generator_loss(fake_logits: jax.Array) -> jax.Array:
    """Non-saturating logistic loss of G: mean softplus(-D(G(z)))."""
    return jnp.mean(jax.nn.softplus(-fake_logits))


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """Logistic loss of D: mean softplus(D(G(z))) + mean softplus(-D(x))."""
    return jnp.mean(jax.nn.softplus(fake_logits)) + jnp.mean(jax.nn.softplus(-real_logits))


def r1_penalty(discriminate: Callable[[jax.Array], jax.Array], real_images: jax.Array) -> jax.Array:
    """Per-sample squared norm of d sum(D(x)) / dx on real images, shape [N]."""
    grads = jax.grad(lambda x: jnp.sum(discriminate(x)))(real_images)
    return jnp.sum(jnp.square(grads), axis=(1, 2, 3))


def path_lengths(synthesize: Callable[[jax.Array], jax.Array], ws: jax.Array, noise: jax.Array) -> jax.Array:
    """Per-sample path lengths |J_w^T y| with y = noise / sqrt(H*W), shape [N].

    `noise` is standard normal of the image shape; the gradient stays differentiable.
    """
    images_shape = noise.shape
    y = noise / np.sqrt(images_shape[1] * images_shape[2])
    grads = jax.grad(lambda w: jnp.sum(synthesize(w) * y))(ws)
    return jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads), axis=2), axis=1))


def path_length_penalty(lengths: jax.Array, pl_mean: jax.Array, pl_decay: float) -> tuple[jax.Array, jax.Array]:
    """Returns ((lengths - new_mean)^2 per sample, new running mean), with the official lerp update.

    As in the official loss, the penalty differentiates through the updated mean (it depends on
    the lengths); only the stored running mean is detached.
    """
    new_mean = lerp(pl_mean, jnp.mean(lengths), pl_decay)
    return jnp.square(lengths - new_mean), jax.lax.stop_gradient(new_mean)


def blur_sigma(cur_nimg, blur_init_sigma: float, blur_fade_kimg: float):
    """StyleGAN3's D-input blur: init_sigma fading linearly to 0 over blur_fade_kimg."""
    if blur_fade_kimg <= 0:
        return 0.0
    return jnp.maximum(1.0 - cur_nimg / (blur_fade_kimg * 1e3), 0.0) * blur_init_sigma


def blur_images(images: jax.Array, sigma, max_sigma: float) -> jax.Array:
    """Gaussian-like blur with taps 2^-(k/sigma)^2 for |k| <= floor(3 sigma), as the official loss.

    The filter has the static length of `max_sigma` so that a changing sigma never recompiles;
    taps outside floor(3 sigma) are zero, which leaves the result unchanged.
    """
    radius = int(np.floor(max_sigma * 3))
    if radius <= 0:
        return images
    k = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
    safe_sigma = jnp.maximum(sigma, 1e-8)
    taps = jnp.where(jnp.abs(k) <= jnp.floor(sigma * 3), jnp.exp2(-jnp.square(k / safe_sigma)), 0.0)
    taps = jnp.where(k == 0, 1.0, taps)  # sigma == 0: identity
    return filter2d(images, taps / jnp.sum(taps))


def mix_styles(ws: jax.Array, ws_other: jax.Array, cutoff: jax.Array, u: jax.Array, mixing_prob: float) -> jax.Array:
    """Style mixing regularisation: if u < mixing_prob, the layers from `cutoff` (an integer in
    [1, num_ws)) on take their w from `ws_other`; `cutoff` and u ~ U[0, 1) are the official draws."""
    num_ws = ws.shape[1]
    cutoff = jnp.where(u < mixing_prob, cutoff, num_ws)
    take_other = (jnp.arange(num_ws) >= cutoff)[None, :, None]
    return jnp.where(take_other, ws_other, ws)


def lerp(start, end, weight):
    """torch.lerp's formula (which of the two forms depends on the weight), so running means and
    Adam moments round as in the official code."""
    if isinstance(weight, (int, float)):
        if weight < 0.5:
            return start + weight * (end - start)
        return end - (end - start) * (1 - weight)
    return jnp.where(weight < 0.5, start + weight * (end - start), end - (end - start) * (1 - weight))
