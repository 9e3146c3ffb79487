"""Features of an image stream: kept as rows and/or float64 running moments up to a row limit, cached on disk
for real data (keyed by everything that determines them), and reported as progress lines."""
from __future__ import annotations

import hashlib
import os
import pathlib
import re
import time
from typing import Any, Callable, Iterable

import numpy as np


def moments_to_mean_cov(feature_sum: np.ndarray, outer_sum: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance from running sums, the covariance divided by N (not N - 1) like the official code."""
    if count <= 0:
        raise ValueError("cannot compute feature statistics of zero items")
    mean = feature_sum / count
    return mean, outer_sum / count - np.outer(mean, mean)


class FeatureAccumulator:
    """Collects feature rows [N, D] batch by batch, ignoring rows past `limit`: the rows themselves
    (`keep_rows`), their sum and sum of outer products (`keep_moments`), or both."""

    def __init__(self, keep_rows: bool = False, keep_moments: bool = False, limit: int | None = None):
        if not (keep_rows or keep_moments):
            raise ValueError("a FeatureAccumulator must keep the rows, their moments, or both")
        self.keep_rows = keep_rows
        self.keep_moments = keep_moments
        self.limit = limit
        self.count = 0
        self.width: int | None = None
        self._batches: list[np.ndarray] = []
        self._total: np.ndarray | None = None
        self._gram: np.ndarray | None = None

    @property
    def wanted(self) -> int | None:
        """How many more rows are wanted (None: unlimited)."""
        return None if self.limit is None else max(self.limit - self.count, 0)

    @property
    def full(self) -> bool:
        """True once `limit` rows were added."""
        return self.wanted == 0

    def add(self, features: np.ndarray) -> None:
        """Adds a batch of features [B, D] (as float32), cut to the rows still wanted."""
        batch = np.asarray(features, np.float32)
        if batch.ndim != 2:
            raise ValueError(f"features must be [B, D], got shape {batch.shape}")
        batch = batch[:self.wanted]
        if self.width is None:
            self.width = batch.shape[1]
        elif batch.shape[1] != self.width:
            raise ValueError(f"feature width changed from {self.width} to {batch.shape[1]}")
        self.count += batch.shape[0]
        if self.keep_rows:
            self._batches.append(batch)
        if self.keep_moments:
            wide = batch.astype(np.float64)
            total, gram = wide.sum(axis=0), wide.T @ wide
            self._total = total if self._total is None else self._total + total
            self._gram = gram if self._gram is None else self._gram + gram

    def rows(self) -> np.ndarray:
        """Every kept row, float32 [N, D]."""
        if not self.keep_rows:
            raise ValueError("this accumulator did not keep the rows")
        if not self._batches:
            raise ValueError("no features were added")
        return np.concatenate(self._batches)

    def mean_and_covariance(self) -> tuple[np.ndarray, np.ndarray]:
        """Float64 mean and covariance (divided by N)."""
        if not self.keep_moments:
            raise ValueError("this accumulator did not keep the moments")
        if self._total is None:
            raise ValueError("no features were added")
        return moments_to_mean_cov(self._total, self._gram, self.count)

    def save(self, path: str | os.PathLike) -> None:
        """Writes the accumulator to an .npz file atomically."""
        path = pathlib.Path(path)
        arrays = {"keep_rows": self.keep_rows, "keep_moments": self.keep_moments,
                  "limit": -1 if self.limit is None else self.limit, "count": self.count}
        if self.keep_rows:
            arrays["rows"] = self.rows()
        if self.keep_moments:
            arrays["total"], arrays["gram"] = self._total, self._gram
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FeatureAccumulator":
        """Reads an accumulator written by `save`."""
        with np.load(path, allow_pickle=False) as data:
            limit = int(data["limit"])
            acc = cls(bool(data["keep_rows"]), bool(data["keep_moments"]), None if limit < 0 else limit)
            acc.count = int(data["count"])
            if acc.keep_rows:
                acc._batches = [data["rows"]]
                acc.width = data["rows"].shape[1]
            if acc.keep_moments:
                acc._total, acc._gram = data["total"], data["gram"]
                acc.width = data["total"].shape[0]
        return acc


def accumulate_features(feature_fn: Callable[[np.ndarray], np.ndarray], batches: Iterable[np.ndarray],
                        acc: FeatureAccumulator, report: Callable[[int], None] | None = None) -> FeatureAccumulator:
    """Feeds uint8 image batches through feature_fn into `acc` until the stream ends or `acc` is full.

    report(count), if given, hears the number of rows in `acc` before the first batch and after each one.
    """
    report = report or (lambda count: None)
    report(acc.count)
    for batch in batches:
        acc.add(feature_fn(batch[:acc.wanted]))
        report(acc.count)
        if acc.full:
            break
    if acc.count == 0:
        raise ValueError("no images to compute features of")
    return acc


# The on-disk cache of real-data statistics.
def default_cache_dir() -> pathlib.Path:
    """$XDG_CACHE_HOME/stylegan_jax/metrics, by default ~/.cache/stylegan_jax/metrics."""
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "stylegan_jax" / "metrics"


def cache_path(cache_dir: pathlib.Path, key: dict[str, Any]) -> pathlib.Path:
    """File for the statistics described by `key` (dataset identity, resolution, x-flip, network, ...)."""
    digest = hashlib.md5(repr(sorted(key.items())).encode("utf-8")).hexdigest()
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", str(key.get("dataset", "stats")))[:64]
    return cache_dir / f"{label}-{digest}.npz"


def cached_stats(cache_dir: pathlib.Path | None, key: dict[str, Any],
                 compute: Callable[[], FeatureAccumulator]) -> FeatureAccumulator:
    """Loads the statistics for `key` from cache_dir, or computes and stores them (no cache if None)."""
    if cache_dir is None:
        return compute()
    path = cache_path(pathlib.Path(cache_dir), key)
    if path.is_file():
        return FeatureAccumulator.load(path)
    stats = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    stats.save(path)
    return stats


# Progress of a long feature computation: images done / total, rate and ETA.
# progress(what, done, total): `done` of `total` images (None: unknown) of the stream `what` have their features.
Progress = Callable[[str, int, int | None], None]


class ProgressLines:
    """A Progress that writes 'PREFIX WHAT: DONE/TOTAL images, RATE img/s, ETA S s' lines.

    A line is written for the first report of a stream (0 images, before any work), then at most
    every `interval` seconds, and for its last image; the rate counts from the first report.
    """

    def __init__(self, prefix: str = "", write: Callable[[str], None] = print, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.prefix, self.write, self.interval, self.clock = prefix, write, interval, clock
        self._what: str | None = None
        self._start = self._last = 0.0
        self._start_done = 0

    def __call__(self, what: str, done: int, total: int | None) -> None:
        now = self.clock()
        if what != self._what:
            self._what, self._start, self._last, self._start_done = what, now, now, done
        elif now - self._last < self.interval and done != total:
            return
        else:
            self._last = now
        elapsed = now - self._start
        rate = (done - self._start_done) / elapsed if elapsed > 0 else None
        fields = [f"{done}/{total if total is not None else '?'} images"]
        if rate:
            fields.append(f"{rate:.1f} img/s")
            if total is not None and done < total:
                fields.append(f"ETA {(total - done) / rate:.0f} s")
        self.write(f"{self.prefix}{what}: {', '.join(fields)}")


def stream_report(progress: Progress | None, what: str, total: int | None) -> Callable[[int], None] | None:
    """`progress` narrowed to the stream `what` of `total` images: report(done), or None without progress."""
    return None if progress is None else lambda done: progress(what, done, total)
