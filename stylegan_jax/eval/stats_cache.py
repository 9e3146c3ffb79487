"""On-disk cache of real-data feature statistics, keyed by everything that determines them."""
from __future__ import annotations

import hashlib
import os
import pathlib
import re
from typing import Any, Callable

from stylegan_jax.eval.feature_stats import FeatureAccumulator


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
