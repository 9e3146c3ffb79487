"""Seeds, latents or ws -> uint8 NHWC images: batched, jitted once per batch shape, sharded over devices."""
from __future__ import annotations

from typing import Any, Iterator, Sequence

import flax.linen as nn
import jax
import numpy as np

from stylegan_jax.images import to_uint8
from stylegan_jax.networks.generation import has_w_space, require_w_space
from stylegan_jax.networks.layers import takes_transform
from stylegan_jax.sampling.batching import map_chunks, static_module
from stylegan_jax.sampling.latents import conditioning, seeds_to_z

NOISE_MODES = ("const", "random", "none")
DEFAULT_BATCH_SIZE = 32


def input_transform(translate: Sequence[float] = (0.0, 0.0), rotate: float = 0.0) -> np.ndarray:
    """The 3x3 matrix StyleGAN3's input takes to show the image rotated by `rotate` degrees and translated.

    The input expects the inverse of the user-facing transform (a rotation by the angle combined
    with the translation, as in the official gen_images.py), so this returns that inverse.
    """
    angle = np.deg2rad(rotate)
    forward = np.array([[np.cos(angle), np.sin(angle), translate[0]],
                        [-np.sin(angle), np.cos(angle), translate[1]],
                        [0.0, 0.0, 1.0]])
    return np.linalg.inv(forward).astype(np.float32)


def compute_ws(G: nn.Module, variables: Any, seeds: Sequence[int] | None = None, *, z: np.ndarray | None = None,
               class_idx: int | None = None, c: np.ndarray | None = None, truncation_psi: float = 1.0,
               truncation_cutoff: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
               devices: Sequence[jax.Device] | None = None) -> np.ndarray:
    """Maps seeds (or z [N, z_dim]) and an optional class (or conditioning `c`, e.g. a text embedding, one
    row or N) to truncated ws [N, num_ws, w_dim] (float32)."""
    require_w_space(G, "mapping latents to w")
    z = _latents(G, seeds, z)
    c = conditioning(G.c_dim, len(z), class_idx, c)
    static = dict(G=static_module(G), truncation_psi=float(truncation_psi), truncation_cutoff=truncation_cutoff)
    return np.concatenate(list(map_chunks(_mapping, variables, [z, c], batch_size, devices, static)))


def _latents(G: nn.Module, seeds: Sequence[int] | None, z: np.ndarray | None) -> np.ndarray:
    """z [N, z_dim] float32 from seeds (the official rule) or as given, checked."""
    if (seeds is None) == (z is None):
        raise ValueError("give exactly one of seeds and z")
    z = seeds_to_z(seeds, G.z_dim) if z is None else np.asarray(z, np.float32)
    if z.ndim != 2 or z.shape[1] != G.z_dim:
        raise ValueError(f"z must have shape [N, {G.z_dim}], got {z.shape}")
    return z


def check_latent_only_options(G: nn.Module, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                              translate: Sequence[float] = (0.0, 0.0), rotate: float = 0.0) -> None:
    """Refuses, in one line, the options a generator without a w space (R3GAN) cannot honour."""
    if has_w_space(G):
        return
    if truncation_psi != 1 or truncation_cutoff is not None:
        require_w_space(G, "truncation (psi != 1)")
    if tuple(translate) != (0, 0) or rotate != 0:
        raise ValueError("translate and rotate need a StyleGAN3 generator (this one has no input transform)")


def iter_images_from_z(G: nn.Module, variables: Any, z: np.ndarray, *, class_idx: int | None = None,
                       c: np.ndarray | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                       devices: Sequence[jax.Device] | None = None) -> Iterator[np.ndarray]:
    """Renders z [N, z_dim] straight to uint8 NHWC images, lazily, with a generator without a w space (R3GAN)."""
    z = _latents(G, None, z)
    c = conditioning(G.c_dim, len(z), class_idx, c)
    return map_chunks(_direct, variables, [z, c], batch_size, devices, dict(G=static_module(G)))


def iter_images(G: nn.Module, variables: Any, ws: np.ndarray, *, noise_mode: str = "const",
                translate: Sequence[float] = (0.0, 0.0), rotate: float = 0.0, noise_seed: int = 0,
                batch_size: int = DEFAULT_BATCH_SIZE,
                devices: Sequence[jax.Device] | None = None) -> Iterator[np.ndarray]:
    """Renders ws [N, num_ws, w_dim] to uint8 NHWC images, lazily, batch by batch (arguments are checked at once).

    translate/rotate set StyleGAN3's input transform (an error for other generators unless
    zero); noise_mode 'random' draws noise from `noise_seed` and the position in the batch.
    """
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
    ws = np.asarray(ws, np.float32)
    if ws.ndim != 3 or ws.shape[1:] != (G.num_ws, G.w_dim) or len(ws) == 0:
        raise ValueError(f"ws must have shape [N >= 1, {G.num_ws}, {G.w_dim}], got {ws.shape}")
    transform = None
    if takes_transform(G):
        transform = input_transform(translate, rotate)
    elif tuple(translate) != (0, 0) or rotate != 0:
        raise ValueError("translate and rotate need a StyleGAN3 generator (this one has no input transform)")
    shared = (variables, jax.random.key(noise_seed), transform)
    static = dict(G=static_module(G), noise_mode=noise_mode)
    return map_chunks(_synthesis, shared, [ws], batch_size, devices, static)


def generate_images(G: nn.Module, variables: Any, seeds: Sequence[int] | None = None, *,
                    z: np.ndarray | None = None, ws: np.ndarray | None = None, truncation_psi: float = 1.0,
                    truncation_cutoff: int | None = None, class_idx: int | None = None,
                    c: np.ndarray | None = None, noise_mode: str = "const",
                    translate: Sequence[float] = (0.0, 0.0), rotate: float = 0.0, noise_seed: int = 0, batch_size: int = DEFAULT_BATCH_SIZE,
                    devices: Sequence[jax.Device] | None = None) -> np.ndarray:
    """uint8 NHWC images of seeds, z or ws (exactly one), like the official gen_images.py renders them; the
    conditioning is the one-hot `class_idx` or `c` as given (one row or one per image)."""
    if sum(x is not None for x in (seeds, z, ws)) != 1:
        raise ValueError("give exactly one of seeds, z and ws")
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
    if not has_w_space(G):
        if ws is not None:
            require_w_space(G, "rendering ws")
        check_latent_only_options(G, truncation_psi, truncation_cutoff, translate, rotate)
        chunks = iter_images_from_z(G, variables, _latents(G, seeds, z), class_idx=class_idx, c=c,
                                    batch_size=batch_size, devices=devices)
        return np.concatenate(list(chunks))
    if ws is None:
        ws = compute_ws(G, variables, seeds, z=z, class_idx=class_idx, c=c, truncation_psi=truncation_psi,
                        truncation_cutoff=truncation_cutoff, batch_size=batch_size, devices=devices)
    chunks = iter_images(G, variables, ws, noise_mode=noise_mode, translate=translate, rotate=rotate,
                         noise_seed=noise_seed, batch_size=batch_size, devices=devices)
    return np.concatenate(list(chunks))


def _mapping(variables, first_row, z, c, *, G, truncation_psi, truncation_cutoff):
    del first_row
    return G.apply(variables, z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                   method="mapping")


def _direct(variables, first_row, z, c, *, G):
    del first_row
    return to_uint8(G.apply(variables, z, c))


def _synthesis(shared, first_row, ws, *, G, noise_mode):
    variables, key, transform = shared
    kwargs = {} if transform is None else {"transform": transform}
    images = G.apply(variables, ws, noise_mode=noise_mode, rngs={"noise": jax.random.fold_in(key, first_row)},
                     method="synthesis", **kwargs)
    return to_uint8(images)
