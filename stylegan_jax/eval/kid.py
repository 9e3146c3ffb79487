"""Kernel Inception Distance: the unbiased MMD^2 with a cubic polynomial kernel, averaged over subsets."""
from __future__ import annotations

import numpy as np


def kernel_distance(real_features: np.ndarray, gen_features: np.ndarray, num_subsets: int = 100,
                    max_subset_size: int = 1000, rng: np.random.Generator | None = None) -> float:
    """Mean unbiased MMD^2 between random equal-size subsets of generated and real features, in float32."""
    real = np.asarray(real_features, np.float32)
    gen = np.asarray(gen_features, np.float32)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise ValueError(f"KID needs features [N, D] with equal D, got {real.shape} and {gen.shape}")
    m = min(real.shape[0], gen.shape[0], max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 items per subset, got {m}")
    rng = np.random.default_rng() if rng is None else rng

    def subset(features: np.ndarray) -> np.ndarray:
        return features[rng.choice(features.shape[0], m, replace=False)]

    estimates = []
    for _ in range(num_subsets):
        gen_subset = subset(gen)
        estimates.append(_unbiased_mmd2(gen_subset, subset(real)))
    return float(np.mean(estimates, dtype=np.float32))


def _cubic_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # k(a, b) = (a.b / dim + 1)^3 for every pair of rows.
    return (a @ b.T / np.float32(a.shape[1]) + 1) ** 3


def _unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> np.float32:
    # Within-set kernel means exclude the m self-pairs; the cross-set mean takes all m^2 pairs.
    m = x.shape[0]
    within = _cubic_kernel(x, x) + _cubic_kernel(y, y)
    return (within.sum() - np.trace(within)) / (m * (m - 1)) - 2 * _cubic_kernel(x, y).sum() / (m * m)
