"""Inception Score from class probabilities."""
from __future__ import annotations

import numpy as np


def inception_score(probs: np.ndarray, num_splits: int = 10) -> tuple[float, float]:
    """Mean and std over `num_splits` splits of exp(E[KL(p(y|x) || p(y))]), in float32 like the official code."""
    probs = np.asarray(probs, np.float32)
    if probs.ndim != 2 or probs.shape[0] < num_splits:
        raise ValueError(f"probabilities must be [N >= num_splits={num_splits}, classes], got {probs.shape}")
    num = probs.shape[0]
    scores = []
    for i in range(num_splits):
        part = probs[i * num // num_splits:(i + 1) * num // num_splits]
        kl = part * (np.log(part) - np.log(np.mean(part, axis=0, keepdims=True)))
        scores.append(np.exp(np.mean(np.sum(kl, axis=1))))
    return float(np.mean(scores)), float(np.std(scores))
