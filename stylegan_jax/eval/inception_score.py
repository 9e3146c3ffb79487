"""Inception Score from class probabilities."""
from __future__ import annotations

import numpy as np


def inception_score(probs: np.ndarray, num_splits: int = 10) -> tuple[float, float]:
    """Mean and std over `num_splits` consecutive splits of exp(E_x KL(p(y|x) || p(y))), in float32."""
    probs = np.asarray(probs, np.float32)
    if probs.ndim != 2 or probs.shape[0] < num_splits:
        raise ValueError(f"probabilities must be [N >= num_splits={num_splits}, classes], got {probs.shape}")
    edges = np.arange(num_splits + 1) * probs.shape[0] // num_splits
    scores = [np.exp(_mean_kl_from_marginal(probs[lo:hi])) for lo, hi in zip(edges[:-1], edges[1:])]
    return float(np.mean(scores)), float(np.std(scores))


def _mean_kl_from_marginal(probs: np.ndarray) -> np.float32:
    # KL(p || q) = sum_y p(y) log(p(y) / q(y)), with q = p(y), the mean prediction over the split.
    log_ratio = np.log(probs) - np.log(probs.mean(axis=0))
    return np.sum(probs * log_ratio, axis=1).mean()
