"""Projecting an image into W (or W+) of a generator, following the StyleGAN2 projector.

Adam optimises w, starting from the mean of W, under a perceptual (LPIPS-VGG16) loss with
decaying noise added to w, together with StyleGAN2's per-layer noise maps (the 'noise_const'
buffers; StyleGAN3 has none), which a regulariser keeps free of spatial correlation.
A generator without a w space (R3GAN) is projected into Z by the same procedure: z starts at the
mean of the latent draws and the noise added to it scales with their spread.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import PIL.Image
from flax import traverse_util

from stylegan_jax.data.decoding import crop_size, to_training_array
from stylegan_jax.images import image_size
from stylegan_jax.networks.generation import has_w_space, require_w_space
from stylegan_jax.sampling.batching import static_module
from stylegan_jax.sampling.latents import class_labels
from stylegan_jax.sampling.render import compute_ws, generate_images

DistanceFn = Callable[[jax.Array, jax.Array], jax.Array]
VGG_MAX_RESOLUTION = 256  # larger images are area-downsampled to this before the distance


def load_target(path: str | os.PathLike, resolution: int | tuple[int, int], channels: int = 3) -> np.ndarray:
    """Reads an image as uint8 [height, width, channels]: centre crop to the resolution's aspect, then Lanczos resize.

    Like the official projector, any aspect ratio is accepted (images of another aspect lose the
    sides of their longer dimension). Raises ValueError when the file is not a readable image, or
    when its centre crop is smaller than `resolution` (it would have to be invented by upscaling).
    """
    try:
        with PIL.Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
    except (OSError, PIL.UnidentifiedImageError, ValueError) as e:
        raise ValueError(f"cannot read image {os.fspath(path)!r}: {e}") from e
    height, width = image_size(resolution)
    if crop_size(image.size, resolution)[0] < width:
        raise ValueError(f"target image {os.fspath(path)!r} is {image.width}x{image.height} (width x height): its "
                         f"centre crop is smaller than the generator's {width}x{height} output; use a photo of at "
                         "least that size")
    return to_training_array(image, resolution, channels)


@dataclasses.dataclass(frozen=True)
class ProjectionOptions:
    """Hyper-parameters of the official projector (defaults are its values)."""

    initial_learning_rate: float = 0.1
    initial_noise_factor: float = 0.05
    lr_rampdown_length: float = 0.25
    lr_rampup_length: float = 0.05
    noise_ramp_length: float = 0.75
    regularize_noise_weight: float = 1e5

    def learning_rate(self, step: int, num_steps: int) -> float:
        """Cosine ramp-down over the last lr_rampdown_length, linear ramp-up over the first lr_rampup_length."""
        t = step / num_steps
        ramp = min(1.0, (1.0 - t) / self.lr_rampdown_length)
        ramp = 0.5 - 0.5 * np.cos(ramp * np.pi)
        return float(self.initial_learning_rate * ramp * min(1.0, t / self.lr_rampup_length))

    def w_noise_scale(self, step: int, num_steps: int, w_std: float) -> float:
        """Std of the noise added to w: quadratic decay to zero at noise_ramp_length of the run."""
        t = step / num_steps
        return w_std * self.initial_noise_factor * max(0.0, 1.0 - t / self.noise_ramp_length) ** 2


@dataclasses.dataclass
class Projection:
    """Result: final ws [num_ws, w_dim], the ws after every step, the reconstruction and the loss trace.

    For a generator without a w space `ws` holds z as [1, z_dim] and `in_z` is True.
    """

    ws: np.ndarray
    ws_steps: np.ndarray  # [num_steps, num_ws, w_dim]
    image: np.ndarray  # uint8 HWC, rendered from `ws` with the optimised noise maps
    losses: np.ndarray  # [num_steps] distance + weighted noise regularisation
    distances: np.ndarray  # [num_steps] perceptual distance alone
    noise: dict[str, np.ndarray]  # the optimised noise maps by buffer path, e.g. 'synthesis/b8/conv0/noise_const'
    variables: dict  # the generator's variables with these noise maps
    in_z: bool = False


def w_statistics(G: nn.Module, variables: Any, num_samples: int = 10000, class_idx: int | None = None,
                 batch_size: int = 1000) -> tuple[np.ndarray, float]:
    """Mean w [w_dim] and scalar std (root mean squared distance to the mean) of `num_samples` draws.

    The latents are RandomState(123).randn(num_samples, z_dim), as in the official projector.
    """
    z = np.random.RandomState(123).randn(num_samples, G.z_dim).astype(np.float32)
    if has_w_space(G):
        w = compute_ws(G, variables, z=z, class_idx=class_idx, batch_size=batch_size)[:, 0].astype(np.float64)
    else:  # the same statistics in Z
        w = z.astype(np.float64)
    w_avg = w.mean(axis=0)
    return w_avg.astype(np.float32), float(np.sqrt(np.sum((w - w_avg) ** 2) / num_samples))


def noise_regularization(noise_maps: Sequence[jax.Array]) -> jax.Array:
    """Sum over maps and their 2x average-pooled versions (down to 8x8) of squared 1-pixel autocorrelations."""
    total = jnp.float32(0)
    for noise in noise_maps:
        while True:
            total += jnp.mean(noise * jnp.roll(noise, 1, axis=1)) ** 2
            total += jnp.mean(noise * jnp.roll(noise, 1, axis=0)) ** 2
            if noise.shape[0] <= 8:
                break
            h, w = noise.shape
            noise = noise.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return total


def project(G: nn.Module, variables: Any, target: np.ndarray, *, num_steps: int = 1000, w_plus: bool = False,
            seed: int = 303, w_avg_samples: int = 10000, class_idx: int | None = None,
            options: ProjectionOptions = ProjectionOptions(), distance_fn: DistanceFn | None = None,
            on_step: Callable[[int, float, float], None] | None = None) -> Projection:
    """Finds w (one for all layers, or one per layer with w_plus) whose image matches `target`.

    `target` is uint8 [height, width, img_channels] of G's img_resolution, as the official projector
    requires (load_target crops and resizes a photo to it). `distance_fn(img0, img1)`
    compares NHWC RGB images in [-1, 1] (default: LPIPS-VGG16). `on_step(step, loss, distance)`
    is called after every step.
    """
    target = np.asarray(target)
    expected = (*image_size(G.img_resolution), G.img_channels)
    if target.dtype != np.uint8 or target.shape != expected:
        raise ValueError(f"target must be uint8 of shape {expected}, got {target.dtype} {target.shape}")
    if num_steps < 1:
        raise ValueError("num_steps must be at least 1")
    if distance_fn is None:
        from stylegan_jax.perceptual.lpips import lpips_distance as distance_fn
    if w_plus:
        require_w_space(G, "w_plus projection")
    w_avg, w_std = w_statistics(G, variables, w_avg_samples, class_idx)
    num_ws, w_dim = (G.num_ws, G.w_dim) if has_w_space(G) else (1, G.z_dim)
    labels = jnp.asarray(class_labels(G.c_dim, class_idx, 1) if not has_w_space(G) else np.zeros((1, 0), np.float32))

    key_noise, key_w = jax.random.split(jax.random.key(seed))
    buffers = traverse_util.flatten_dict(dict(variables.get("buffers", {})))
    noise_names = sorted(name for name in buffers if name[-1] == "noise_const")
    noise_keys = jax.random.split(key_noise, max(len(noise_names), 1))
    params = {"w": jnp.tile(jnp.asarray(w_avg)[None], (num_ws if w_plus else 1, 1)),
              "noise": {"/".join(name): jax.random.normal(k, buffers[name].shape)
                        for name, k in zip(noise_names, noise_keys)}}
    opt_state = _ADAM.init(params)
    target_images = jnp.asarray(target, jnp.float32)[None] / 127.5 - 1

    step_fn = functools.partial(_step, G=static_module(G), distance_fn=distance_fn,
                                noise_weight=options.regularize_noise_weight)
    ws_steps, losses, distances = [], [], []
    for step in range(num_steps):
        schedule = (np.float32(options.learning_rate(step, num_steps)),
                    np.float32(options.w_noise_scale(step, num_steps, w_std)))
        params, opt_state, loss, dist = step_fn(params, opt_state, variables, target_images, labels, *schedule,
                                                jax.random.fold_in(key_w, step))
        ws_steps.append(np.broadcast_to(np.asarray(params["w"]), (num_ws, w_dim)))
        losses.append(float(loss))
        distances.append(float(dist))
        if on_step is not None:
            on_step(step, losses[-1], distances[-1])

    final_variables = _with_noise(variables, params["noise"])
    image = render_projection(G, final_variables, ws_steps[-1][None], class_idx)[0]
    return Projection(ws=ws_steps[-1], ws_steps=np.stack(ws_steps), image=image, losses=np.array(losses),
                      distances=np.array(distances),
                      noise={name: np.asarray(value) for name, value in params["noise"].items()},
                      variables=final_variables, in_z=not has_w_space(G))


def render_projection(G: nn.Module, variables: Any, latents: np.ndarray, class_idx: int | None = None) -> np.ndarray:
    """uint8 images of projected latents [N, num_ws, w_dim] (ws), or [N, 1, z_dim] (z, without a w space)."""
    if has_w_space(G):
        return generate_images(G, variables, ws=latents)
    return generate_images(G, variables, z=np.asarray(latents)[:, 0], class_idx=class_idx)


def _with_noise(variables: Any, noise: dict[str, jax.Array]) -> dict:
    """`variables` with the noise maps named 'a/b/noise_const' replaced."""
    if not noise:
        return dict(variables)
    buffers = traverse_util.flatten_dict(dict(variables["buffers"]))
    buffers.update({tuple(name.split("/")): value for name, value in noise.items()})
    return {**variables, "buffers": traverse_util.unflatten_dict(buffers)}


def _area_downsample(images: jax.Array, size: int) -> jax.Array:
    n, h, w, c = images.shape
    if h % size or w % size:
        raise ValueError(f"cannot area-downsample {h}x{w} images to {size}x{size}")
    return images.reshape(n, size, h // size, size, w // size, c).mean(axis=(2, 4))


def _as_rgb(images: jax.Array) -> jax.Array:
    images = jnp.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
    return _area_downsample(images, VGG_MAX_RESOLUTION) if images.shape[1] > VGG_MAX_RESOLUTION else images


_ADAM = optax.scale_by_adam()  # torch.optim.Adam's moments (b1 0.9, b2 0.999, eps 1e-8); the step applies the lr


@functools.partial(jax.jit, static_argnames=("G", "distance_fn", "noise_weight"))
def _step(params, opt_state, variables, target, labels, learning_rate, w_noise_scale, key, *, G, distance_fn,
          noise_weight):
    def loss_fn(p):
        w = p["w"] + jax.random.normal(key, p["w"].shape) * w_noise_scale
        if has_w_space(G):
            ws = jnp.broadcast_to(w[None], (1, G.num_ws, G.w_dim))
            images = G.apply(_with_noise(variables, p["noise"]), ws, noise_mode="const", method="synthesis")
        else:
            images = G.apply(variables, w, labels)
        dist = jnp.sum(distance_fn(_as_rgb(images), _as_rgb(target)))
        reg = noise_regularization([p["noise"][name] for name in sorted(p["noise"])])
        return dist + reg * noise_weight, dist

    (loss, dist), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = _ADAM.update(grads, opt_state, params)
    params = jax.tree_util.tree_map(lambda p, u: p - learning_rate * u, params, updates)
    noise = {name: _unit_normalized(value) for name, value in params["noise"].items()}
    return {"w": params["w"], "noise": noise}, opt_state, loss, dist


def _unit_normalized(noise: jax.Array) -> jax.Array:
    noise = noise - jnp.mean(noise)
    return noise * jax.lax.rsqrt(jnp.mean(jnp.square(noise)))
