"""Latent inputs of a generator: z from seeds (the official rule), one-hot class labels or a given conditioning."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from stylegan_jax.sampling.parsing import parse_seeds


def seeds_to_z(seeds: Sequence[int], z_dim: int) -> np.ndarray:
    """[N, z_dim] float32: row i is numpy.random.RandomState(seeds[i]).randn(1, z_dim), as gen_images.py draws it."""
    seeds = parse_seeds(list(seeds))
    return np.concatenate([np.random.RandomState(seed).randn(1, z_dim) for seed in seeds]).astype(np.float32)


def class_labels(c_dim: int, class_idx: int | None, count: int) -> np.ndarray:
    """[count, c_dim] float32 one-hot labels of `class_idx` ([count, 0] for an unconditional network)."""
    if c_dim == 0:
        if class_idx is not None:
            raise ValueError(f"class {class_idx} given, but the network is unconditional (c_dim=0)")
        return np.zeros((count, 0), np.float32)
    if class_idx is None:
        raise ValueError(f"the network is conditional (c_dim={c_dim}): a class index in [0, {c_dim - 1}] is needed")
    if not 0 <= class_idx < c_dim:
        raise ValueError(f"class {class_idx} is out of range: the network has classes 0 to {c_dim - 1}")
    labels = np.zeros((count, c_dim), np.float32)
    labels[:, class_idx] = 1
    return labels


def conditioning(c_dim: int, count: int, class_idx: int | None = None, c: np.ndarray | None = None) -> np.ndarray:
    """[count, c_dim] float32: `c` as given (one row for all, or `count` rows; e.g. text embeddings), else the
    one-hot labels of `class_idx`."""
    if c is None:
        return class_labels(c_dim, class_idx, count)
    if class_idx is not None:
        raise ValueError("give a class index or a conditioning c, not both")
    c = np.asarray(c, np.float32)
    c = c[None] if c.ndim == 1 else c
    if c.ndim != 2 or c.shape[1] != c_dim or len(c) not in (1, count):
        raise ValueError(f"c must have shape [{c_dim}], [1, {c_dim}] or [{count}, {c_dim}], got {c.shape}")
    return np.array(np.broadcast_to(c, (count, c_dim)))
