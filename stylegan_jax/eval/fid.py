"""Fréchet Inception Distance: the distance between two Gaussians fitted to feature sets (their statistics:
feature_stats.py; the Inception: eval/feature_nets.py)."""
from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

from stylegan_jax.eval.feature_stats import moments_to_mean_cov


def mean_cov(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 mean [D] and covariance [D, D] (divided by N) of features [N, D]."""
    x = np.asarray(features, np.float32).astype(np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be [N, D], got shape {x.shape}")
    return moments_to_mean_cov(x.sum(axis=0), x.T @ x, x.shape[0])


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2)), in float64 (real part of sqrtm)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    dim = mu1.shape[0]
    if mu1.shape != (dim,) or mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(f"frechet_distance: shapes do not match: mu1 {mu1.shape}, sigma1 {sigma1.shape}, "
                         f"mu2 {mu2.shape}, sigma2 {sigma2.shape}")
    with warnings.catch_warnings():
        # Like the official code (sqrtm with disp=False): singular products, common with few
        # samples, are not worth a warning; their square root is still used as computed.
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        sqrt_product = scipy.linalg.sqrtm(sigma1 @ sigma2)
    distance = np.square(mu1 - mu2).sum() + np.trace(sigma1 + sigma2 - 2 * sqrt_product)
    return float(np.real(distance))
