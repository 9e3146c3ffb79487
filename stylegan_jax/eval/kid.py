"""Kernel Inception Distance: the unbiased MMD^2 with a cubic polynomial kernel, averaged over subsets."""
from __future__ import annotations

import numpy as np


def kernel_distance(real_features: np.ndarray, gen_features: np.ndarray, num_subsets: int = 100,
                    max_subset_size: int = 1000, rng: np.random.Generator | None = None) -> float:
    """The official KID subset estimator, in float32 like the official code."""
    real = np.asarray(real_features, np.float32)
    gen = np.asarray(gen_features, np.float32)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise ValueError(f"KID needs features [N, D] with equal D, got {real.shape} and {gen.shape}")
    m = min(real.shape[0], gen.shape[0], max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 items per subset, got {m}")
    rng = np.random.default_rng() if rng is None else rng
    n = real.shape[1]
    total = np.float32(0)
    for _ in range(num_subsets):
        x = gen[rng.choice(gen.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b = (x @ y.T / n + 1) ** 3
        total += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(total / num_subsets / m)
