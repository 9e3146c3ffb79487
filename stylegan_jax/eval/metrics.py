"""Registry of the StyleGAN papers' metrics under their official names, and `run_metrics` to compute them."""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
import time
from typing import Any, Callable, Iterator, Sequence

import jax
import numpy as np

from stylegan_jax.eval import feature_nets
from stylegan_jax.eval.equivariance import equivariance_psnr
from stylegan_jax.eval.feature_nets import FeatureNet
from stylegan_jax.eval.feature_stats import (FeatureAccumulator, Progress, accumulate_features, cached_stats,
                                             default_cache_dir, stream_report)
from stylegan_jax.eval.fid import frechet_distance
from stylegan_jax.eval.inception_score import inception_score
from stylegan_jax.eval.inputs import Generator, RealImages, latents_and_labels
from stylegan_jax.eval.kid import kernel_distance
from stylegan_jax.eval.ppl import ppl_distances, trimmed_mean
from stylegan_jax.eval.precision_recall import precision_recall
from stylegan_jax.images import to_uint8
from stylegan_jax.perceptual.lpips import lpips_vgg16


@dataclasses.dataclass
class MetricOptions:
    """Everything a metric may use. Only `generator` is always needed; most metrics also need `real`.

    `feature_net` replaces the Inception pool3 network of FID/KID/PR. Precision/recall uses the
    official VGG16 fc2 features when `pr_feature_net` or `vgg16_weights` (a weights file) is given,
    and its results carry the official names; otherwise it runs on the pool3 features and is
    labelled `*_inception_*`. `cache_dir=None` disables the statistics cache. `progress` hears how
    many images of each stream ('real images', 'generated images') have their features.
    """

    generator: Generator
    real: RealImages | None = None
    seed: int = 0
    batch_size: int = 64
    cache_dir: pathlib.Path | None = dataclasses.field(default_factory=default_cache_dir)
    inception_weights: str | os.PathLike | None = None
    lpips_weights: str | os.PathLike | None = None
    vgg16_weights: str | os.PathLike | None = None
    feature_net: FeatureNet | None = None
    pr_feature_net: FeatureNet | None = None
    progress: Progress | None = None

    def pool3_net(self) -> FeatureNet:
        """The feature network of FID/KID (and PR without VGG16 features)."""
        if self.feature_net is not None:
            return self.feature_net
        return feature_nets.inception_pool3(self.inception_weights, self.batch_size)

    def pr_net(self) -> tuple[FeatureNet, bool]:
        """The feature network of precision/recall, and whether it is the official VGG16."""
        if self.pr_feature_net is not None:
            return self.pr_feature_net, True
        if self.vgg16_weights is not None:
            return feature_nets.vgg16_fc2(self.vgg16_weights, self.batch_size), True
        return self.pool3_net(), False

    def labels(self) -> np.ndarray | None:
        """The dataset labels that conditional generators are sampled with."""
        return None if self.real is None else self.real.labels


def _real_stats(opts: MetricOptions, net: FeatureNet, max_items: int | None, dataset_xflip: bool,
                **keep: bool) -> FeatureAccumulator:
    if opts.real is None:
        raise ValueError("this metric compares with real images: give MetricOptions.real")
    real = opts.real
    xflip = real.xflip if dataset_xflip else False
    key = dict(dataset=real.identity, resolution=real.resolution, xflip=xflip, feature_net=net.name,
               max_items=max_items, **keep)
    total = None if real.count is None else real.count * (2 if xflip else 1)
    if max_items is not None:
        total = max_items if total is None else min(total, max_items)
    report = stream_report(opts.progress, "real images", total)
    return cached_stats(opts.cache_dir, key, lambda: accumulate_features(
        net, real.batches(xflip), FeatureAccumulator(limit=max_items, **keep), report))


def _generated_batches(opts: MetricOptions) -> Iterator[np.ndarray]:
    gen = opts.generator
    key = jax.random.key(opts.seed)
    while True:
        key, sub = jax.random.split(key)
        z, c = latents_and_labels(sub, gen.z_dim, gen.c_dim, opts.labels(), opts.batch_size)
        yield np.asarray(to_uint8(gen.generate(z, c)))


def _generated_stats(opts: MetricOptions, net: FeatureNet, num: int, **keep: bool) -> FeatureAccumulator:
    return accumulate_features(net, _generated_batches(opts), FeatureAccumulator(limit=num, **keep),
                               stream_report(opts.progress, "generated images", num))


def _fid(opts: MetricOptions, *, name: str, num_gen: int, max_real: int | None, dataset_xflip: bool) -> dict:
    net = opts.pool3_net()
    mu_real, sigma_real = _real_stats(opts, net, max_real, dataset_xflip, keep_moments=True).mean_and_covariance()
    mu_gen, sigma_gen = _generated_stats(opts, net, num_gen, keep_moments=True).mean_and_covariance()
    return {name: frechet_distance(mu_gen, sigma_gen, mu_real, sigma_real)}


def _kid(opts: MetricOptions, *, name: str, num_gen: int, max_real: int, dataset_xflip: bool) -> dict:
    net = opts.pool3_net()
    real = _real_stats(opts, net, max_real, dataset_xflip, keep_rows=True).rows()
    gen = _generated_stats(opts, net, num_gen, keep_rows=True).rows()
    return {name: kernel_distance(real, gen, num_subsets=100, max_subset_size=1000,
                                  rng=np.random.default_rng(opts.seed))}


def _pr(opts: MetricOptions, *, name: str, num_gen: int, max_real: int, dataset_xflip: bool) -> dict:
    net, official = opts.pr_net()
    label = name if official else f"{name}_inception"
    real = _real_stats(opts, net, max_real, dataset_xflip, keep_rows=True).rows()
    gen = _generated_stats(opts, net, num_gen, keep_rows=True).rows()
    precision, recall = precision_recall(real, gen, nhood_size=3)
    return {f"{label}_precision": precision, f"{label}_recall": recall}


def _is(opts: MetricOptions, *, name: str, num_gen: int) -> dict:
    net = feature_nets.inception_probabilities(opts.inception_weights, opts.batch_size)
    mean, std = inception_score(_generated_stats(opts, net, num_gen, keep_rows=True).rows(), 10)
    return {f"{name}_mean": mean, f"{name}_std": std}


def _ppl(opts: MetricOptions, *, name: str, num_samples: int, space: str, sampling: str, crop: bool) -> dict:
    gen = opts.generator
    if gen.mapping is None or gen.synthesis is None:
        raise ValueError(f"{name} needs a generator with a w space (mapping and synthesis, as StyleGAN2/3)")
    dist = ppl_distances(gen.mapping, gen.synthesis, lpips_vgg16(opts.lpips_weights), gen.z_dim, gen.c_dim,
                         num_samples, jax.random.key(opts.seed), opts.labels(), epsilon=1e-4, space=space,
                         sampling=sampling, crop=crop, batch_size=2)
    return {name: trimmed_mean(dist)}


def _eq(opts: MetricOptions, *, name: str, kind: str, num_samples: int) -> dict:
    gen = opts.generator
    if gen.render is None:
        raise ValueError(f"{name} needs Generator.render(z, c, transform): a generator with a transformable input")
    return {name: equivariance_psnr(gen.render, gen.z_dim, gen.c_dim, kind, num_samples,
                                    jax.random.key(opts.seed), opts.labels(), batch_size=4)}


MetricFn = Callable[[MetricOptions], dict[str, float]]


def _build_registry() -> dict[str, MetricFn]:
    registry: dict[str, MetricFn] = {}

    def add(name: str, fn: Callable[..., dict], **kwargs: Any) -> None:
        registry[name] = functools.partial(fn, name=name, **kwargs)

    for size, num in (("50k", 50_000), ("10k", 10_000), ("5k", 5_000), ("1k", 1_000)):
        add(f"fid{size}_full", _fid, num_gen=num, max_real=None, dataset_xflip=False)
        add(f"kid{size}_full", _kid, num_gen=num, max_real=1_000_000, dataset_xflip=False)
        add(f"pr{size}3_full", _pr, num_gen=num, max_real=200_000, dataset_xflip=False)
        add(f"is{size}", _is, num_gen=num)
        add(f"eqt{size}_int", _eq, kind="int", num_samples=num)
        add(f"eqt{size}_frac", _eq, kind="frac", num_samples=num)
        add(f"eqr{size}", _eq, kind="rot", num_samples=num)
    # Path length in Z (slerp) or W (lerp), along full paths or at their ends; all but ppl2_wend crop
    # the images to the face region first, like the official metrics.
    for space, sampling in (("z", "full"), ("w", "full"), ("z", "end"), ("w", "end")):
        add(f"ppl_{space}{sampling}", _ppl, num_samples=50_000, space=space, sampling=sampling, crop=True)
    add("ppl2_wend", _ppl, num_samples=50_000, space="w", sampling="end", crop=False)
    # Legacy metrics: at most 50k real images, with the dataset's own x-flip setting.
    add("fid50k", _fid, num_gen=50_000, max_real=50_000, dataset_xflip=True)
    add("kid50k", _kid, num_gen=50_000, max_real=50_000, dataset_xflip=True)
    add("pr50k3", _pr, num_gen=50_000, max_real=50_000, dataset_xflip=True)
    return registry


METRICS: dict[str, MetricFn] = _build_registry()


def run_metrics(metric_names: Sequence[str], options: MetricOptions) -> list[dict]:
    """Computes the named metrics; returns one record per metric: {metric, results, total_time, num_devices}."""
    unknown = [name for name in metric_names if name not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; valid: {', '.join(sorted(METRICS))}")
    records = []
    for name in metric_names:
        start = time.time()
        results = METRICS[name](options)
        records.append(dict(metric=name, results=results, total_time=time.time() - start,
                            num_devices=jax.device_count()))
    return records


def append_jsonl(record: dict, path: str | os.PathLike) -> None:
    """Appends `record` plus a timestamp as one JSON line to `path`."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(dict(record, timestamp=time.time())) + "\n")
