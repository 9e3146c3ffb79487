"""Interpolation: linear and cubic paths in W, spherical (slerp) paths in Z, looping through keyframes."""
from __future__ import annotations

from typing import Any, Iterator, Sequence

import flax.linen as nn
import jax
import numpy as np
import scipy.interpolate

from stylegan_jax.images import grid_shape, image_grid
from stylegan_jax.sampling.latents import seeds_to_z
from stylegan_jax.networks.generation import has_w_space
from stylegan_jax.sampling.render import (DEFAULT_BATCH_SIZE, check_latent_only_options, compute_ws, iter_images,
                                          iter_images_from_z)

KINDS = ("cubic", "linear", "slerp")  # cubic and linear move through W (Z without a w space), slerp through Z
_CUBIC_WRAPS = 2  # keyframe copies on each side, so that the looping spline has no ends in view


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """a + (b - a) * t for each t: [*t.shape, *a.shape]."""
    t = np.asarray(t, np.float64).reshape(*np.shape(t), *([1] * np.ndim(a)))
    return a + (b - a) * t


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Spherical interpolation between vectors a and b (along the great circle of their directions)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    omega = np.arccos(np.clip(cos, -1, 1))
    if np.sin(omega) < 1e-6:
        return lerp(a, b, t)
    t = np.asarray(t, np.float64)[..., None]
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def keyframe_path(keys: np.ndarray, steps_per_key: int, kind: str = "linear") -> np.ndarray:
    """A closed path through keys [K, ...] back to keys[0], steps_per_key points from each key on: [K * steps, ...].

    'linear' and 'slerp' join consecutive keys (slerp needs 1-D keys, e.g. z); 'cubic' is a
    spline through the periodically repeated keys, as gen_video.py moves through W.
    """
    if kind not in KINDS:
        raise ValueError(f"interpolation kind must be one of {KINDS}, got {kind!r}")
    keys = np.asarray(keys, np.float64)
    count = len(keys)
    t = np.arange(count * steps_per_key) / steps_per_key
    if kind == "cubic":
        x = np.arange(-count * _CUBIC_WRAPS, count * (_CUBIC_WRAPS + 1))
        y = np.tile(keys, (2 * _CUBIC_WRAPS + 1,) + (1,) * (keys.ndim - 1))
        return scipy.interpolate.CubicSpline(x, y, axis=0)(t)
    blend = lerp if kind == "linear" else slerp
    index, frac = np.floor(t).astype(int), t % 1
    return np.stack([blend(keys[i], keys[(i + 1) % count], f) for i, f in zip(index, frac)])


def _path(keys: np.ndarray, steps: int, kind: str, closed: bool) -> np.ndarray:
    """A closed loop through all keys, or `steps` points from keys[0] to keys[1]."""
    if closed:
        return keyframe_path(keys, steps, kind)
    return (slerp if kind == "slerp" else lerp)(keys[0], keys[1], np.linspace(0, 1, steps))


def _path_images(G: nn.Module, variables: Any, z: np.ndarray, steps: int, kind: str, closed: bool, *,
                 noise_mode: str, class_idx: int | None, truncation_psi: float, batch_size: int,
                 devices: Sequence[jax.Device] | None) -> Iterator[np.ndarray]:
    """Image batches along paths through the keys z [cells, K, z_dim], point by point with the cells
    interleaved (point 0 of every cell, then point 1, ...): through W, or through Z when G has no w space."""
    common = dict(batch_size=batch_size, devices=devices)
    if not has_w_space(G):
        check_latent_only_options(G, truncation_psi)
        path = np.stack([_path(keys, steps, kind, closed) for keys in z]).transpose(1, 0, 2)
        return iter_images_from_z(G, variables, path.reshape(-1, z.shape[-1]), class_idx=class_idx, **common)
    ws = _path_ws(G, variables, z, steps, kind, closed, class_idx=class_idx, truncation_psi=truncation_psi, **common)
    ws = ws.transpose(1, 0, 2, 3).reshape(-1, *ws.shape[2:])
    return iter_images(G, variables, ws, noise_mode=noise_mode, **common)


def _path_ws(G: nn.Module, variables: Any, z: np.ndarray, steps: int, kind: str, closed: bool,
             **mapping) -> np.ndarray:
    """ws [cells, points, num_ws, w_dim] along paths through the keys z [cells, K, z_dim] (in Z for slerp)."""
    cells, count, z_dim = z.shape
    if kind == "slerp":
        path = np.stack([_path(keys, steps, kind, closed) for keys in z])
        ws = compute_ws(G, variables, z=path.reshape(-1, z_dim), **mapping)
        return ws.reshape(cells, path.shape[1], G.num_ws, -1)
    keys = compute_ws(G, variables, z=z.reshape(-1, z_dim), **mapping).reshape(cells, count, G.num_ws, -1)
    return np.stack([_path(k, steps, kind, closed) for k in keys]).astype(np.float32)


def video_frames(G: nn.Module, variables: Any, seeds: Sequence[int], *, grid: tuple[int, int] = (1, 1),
                 num_keyframes: int | None = None, w_frames: int = 120, kind: str = "cubic",
                 truncation_psi: float = 1.0, class_idx: int | None = None, shuffle_seed: int | None = None,
                 noise_mode: str = "const", batch_size: int = DEFAULT_BATCH_SIZE,
                 devices: Sequence[jax.Device] | None = None) -> Iterator[np.ndarray]:
    """The frames (uint8 HWC, rendered lazily) of a looping interpolation video, like gen_video.py's.

    A grid of width x height cells each loops through `num_keyframes` seeds (default: the seeds
    split evenly over the cells), `w_frames` frames per keyframe; seeds repeat cyclically to fill
    the cells and can be shuffled with `shuffle_seed`.
    """
    width, height = grid
    cells = width * height
    if num_keyframes is None:
        if len(seeds) % cells:
            raise ValueError(f"{len(seeds)} seeds do not divide evenly over a {width}x{height} grid; "
                             "give num_keyframes or a multiple of the cell count")
        num_keyframes = len(seeds) // cells
    if num_keyframes < 1 or w_frames < 1:
        raise ValueError("num_keyframes and w_frames must be at least 1")
    order = np.array([seeds[i % len(seeds)] for i in range(num_keyframes * cells)], np.int64)
    if shuffle_seed is not None:
        np.random.RandomState(shuffle_seed).shuffle(order)
    z = seeds_to_z(order.tolist(), G.z_dim).reshape(cells, num_keyframes, G.z_dim)
    chunks = _path_images(G, variables, z, w_frames, kind, True, noise_mode=noise_mode, class_idx=class_idx,
                          truncation_psi=truncation_psi, batch_size=batch_size, devices=devices)
    return _tiled(chunks, width, height)


def _tiled(chunks: Iterator[np.ndarray], width: int, height: int) -> Iterator[np.ndarray]:
    """Regroups a stream of image batches into width x height grids."""
    pending: list[np.ndarray] = []
    for chunk in chunks:
        pending.extend(chunk)
        while len(pending) >= width * height:
            yield image_grid(np.stack(pending[:width * height]), width, height)
            del pending[:width * height]


def interpolation_grid(G: nn.Module, variables: Any, seeds: Sequence[int], steps: int = 8, *,
                       kind: str = "linear", truncation_psi: float = 1.0, class_idx: int | None = None,
                       noise_mode: str = "const", batch_size: int = DEFAULT_BATCH_SIZE,
                       devices: Sequence[jax.Device] | None = None) -> np.ndarray:
    """One row per consecutive seed pair, `steps` images from the first seed to the second (uint8 HWC)."""
    if len(seeds) < 2 or steps < 2:
        raise ValueError("an interpolation grid needs at least 2 seeds and 2 steps")
    if kind == "cubic":
        raise ValueError("a row joins two seeds: use kind 'linear' (in W) or 'slerp' (in Z)")
    z = seeds_to_z(seeds, G.z_dim)
    pairs = np.stack([z[:-1], z[1:]], axis=1)
    chunks = _path_images(G, variables, pairs, steps, kind, False, noise_mode=noise_mode, class_idx=class_idx,
                          truncation_psi=truncation_psi, batch_size=batch_size, devices=devices)
    images = np.concatenate(list(chunks))  # step-major: image (step, pair)
    images = images.reshape(steps, len(pairs), *images.shape[1:]).transpose(1, 0, 2, 3, 4).reshape(images.shape)
    return image_grid(images, *grid_shape(len(images), steps))
