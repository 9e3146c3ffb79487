"""Feature statistics of an image stream: every feature row and/or float64 moments, up to max_items."""
from __future__ import annotations

import os
import pathlib
from typing import Callable, Iterable

import numpy as np

from stylegan_jax.eval.frechet import moments_to_mean_cov


class FeatureStats:
    """Accumulates features [N, D] batch by batch, ignoring rows past `max_items`."""

    def __init__(self, capture_all: bool = False, capture_mean_cov: bool = False, max_items: int | None = None):
        if not (capture_all or capture_mean_cov):
            raise ValueError("FeatureStats must capture all features, their mean/covariance, or both")
        self.capture_all = capture_all
        self.capture_mean_cov = capture_mean_cov
        self.max_items = max_items
        self.num_items = 0
        self.num_features: int | None = None
        self._rows: list[np.ndarray] = []
        self._sum: np.ndarray | None = None
        self._outer: np.ndarray | None = None

    @property
    def remaining(self) -> int | None:
        """How many more rows are wanted (None: unlimited)."""
        return None if self.max_items is None else max(self.max_items - self.num_items, 0)

    @property
    def is_full(self) -> bool:
        """True once max_items rows were appended."""
        return self.remaining == 0

    def append(self, features: np.ndarray) -> None:
        """Adds a batch of features [B, D] (float32), truncated to what is still wanted."""
        x = np.asarray(features, np.float32)
        if x.ndim != 2:
            raise ValueError(f"features must be [B, D], got shape {x.shape}")
        if self.remaining is not None:
            x = x[:self.remaining]
        if self.num_features is None:
            self.num_features = x.shape[1]
            if self.capture_mean_cov:
                self._sum = np.zeros(x.shape[1], np.float64)
                self._outer = np.zeros((x.shape[1], x.shape[1]), np.float64)
        elif x.shape[1] != self.num_features:
            raise ValueError(f"feature width changed from {self.num_features} to {x.shape[1]}")
        self.num_items += x.shape[0]
        if self.capture_all:
            self._rows.append(x)
        if self.capture_mean_cov:
            x64 = x.astype(np.float64)
            self._sum += x64.sum(axis=0)
            self._outer += x64.T @ x64

    def all_features(self) -> np.ndarray:
        """Every captured row, float32 [N, D]."""
        if not self.capture_all:
            raise ValueError("these statistics did not capture all features")
        if not self._rows:
            raise ValueError("no features were captured")
        return np.concatenate(self._rows)

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """Float64 mean and covariance (divided by N)."""
        if not self.capture_mean_cov:
            raise ValueError("these statistics did not capture mean/covariance")
        if self._sum is None:
            raise ValueError("no features were captured")
        return moments_to_mean_cov(self._sum, self._outer, self.num_items)

    def save(self, path: str | os.PathLike) -> None:
        """Writes the statistics to an .npz file atomically."""
        path = pathlib.Path(path)
        arrays = {"capture_all": self.capture_all, "capture_mean_cov": self.capture_mean_cov,
                  "max_items": -1 if self.max_items is None else self.max_items, "num_items": self.num_items}
        if self.capture_all:
            arrays["features"] = self.all_features()
        if self.capture_mean_cov:
            arrays["sum"], arrays["outer"] = self._sum, self._outer
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FeatureStats":
        """Reads statistics written by `save`."""
        with np.load(path, allow_pickle=False) as data:
            max_items = int(data["max_items"])
            stats = cls(bool(data["capture_all"]), bool(data["capture_mean_cov"]),
                        None if max_items < 0 else max_items)
            stats.num_items = int(data["num_items"])
            if stats.capture_all:
                stats._rows = [data["features"]]
                stats.num_features = data["features"].shape[1]
            if stats.capture_mean_cov:
                stats._sum, stats._outer = data["sum"], data["outer"]
                stats.num_features = data["sum"].shape[0]
        return stats


def compute_feature_stats(feature_fn: Callable[[np.ndarray], np.ndarray], batches: Iterable[np.ndarray],
                          stats: FeatureStats) -> FeatureStats:
    """Feeds uint8 image batches through feature_fn into `stats` until the stream ends or stats are full."""
    for batch in batches:
        remaining = stats.remaining
        stats.append(feature_fn(batch if remaining is None else batch[:remaining]))
        if stats.is_full:
            break
    if stats.num_items == 0:
        raise ValueError("no images to compute features of")
    return stats
