"""The training dataset: a deterministic, resumable, per-process stream of batches; and a once-through reader."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Iterator, Mapping, Sequence

import ml_collections
import numpy as np

from stylegan_jax.data.captions import Tokenizer
from stylegan_jax.data.config import validate_dataset_config
from stylegan_jax.data.image_set import ImageSet
from stylegan_jax.data.order import process_batches
from stylegan_jax.data.pipeline import load_batches
from stylegan_jax.images import image_size

Config = Mapping[str, Any] | ml_collections.ConfigDict


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What training and evaluation need to know about a dataset.

    num_images counts the readable images (mirrored copies not included); identity is a stable name
    for the images as processed (source, resolution, channels, xflip, max_size), e.g. for caching
    real-data statistics.
    """

    name: str
    num_images: int
    resolution: int | tuple[int, int]  # one side, or (height, width)
    channels: int
    c_dim: int
    xflip: bool
    identity: str


def _info(images: ImageSet) -> DatasetInfo:
    config = images.config
    key = dict(source=config.source, location=images.source.location, resolution=config.resolution,
               channels=config.channels, xflip=config.xflip, max_size=config.max_size)
    if config.fit != "crop":  # square crops keep the identities they had before `fit` existed
        key["fit"] = config.fit
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    height, width = image_size(config.resolution)
    shown = str(height) if height == width else f"{height}x{width}"
    return DatasetInfo(name=images.source.name, num_images=len(images), resolution=config.resolution,
                       channels=config.channels, c_dim=images.c_dim, xflip=config.xflip,
                       identity=f"{images.source.name}-{shown}-{digest}")


class Dataset:
    """This process's share of an endless stream of shuffled training batches.

    Batch k of the stream depends only on (seed, k): every epoch is a permutation of the examples
    (the images, then their mirrored copies when xflip) drawn from (seed, epoch); process p of P gets
    the p-th contiguous slice of each global batch. Batches are dicts of numpy arrays,
    'image': uint8 [B, H, W, C] and 'label': float32 one-hot [B, c_dim], B = batch_size / process_count
    (with dataset.captions, 'label' holds the caption's CLIP token ids, c_dim 77; see data.captions).
    """

    def __init__(self, images: ImageSet, *, seed: int, batch_size: int, process_index: int, process_count: int):
        self._images = images
        self._seed = seed
        self._batch_size = batch_size
        self._process_index = process_index
        self._process_count = process_count
        self.info = _info(images)

    @property
    def bad_files(self) -> list[str]:
        """Files that could not be read (found at start-up or since), skipped."""
        return self._images.bad_files

    def _load(self, example: int) -> tuple[np.ndarray, int]:
        size = len(self._images)
        image, position = self._images.load_or_substitute(example % size)
        return (np.ascontiguousarray(image[:, ::-1]) if example >= size else image), position

    def iterate(self, start_batch: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Batches start_batch, start_batch + 1, ... (endless); skipped batches cost no image decoding."""
        examples_per_epoch = len(self._images) * (2 if self.info.xflip else 1)
        per_process = self._batch_size // self._process_count
        batches = load_batches(
            self._load, lambda: process_batches(self._seed, examples_per_epoch, self._batch_size,
                                                self._process_index, self._process_count, start_batch),
            image_shape=self._images.image_shape, batch_size=per_process, num_threads=self._images.num_threads,
            drop_remainder=True)
        for images, positions in batches:
            yield {"image": images, "label": self._images.label_vectors(positions)}

    def sample_labels(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """float32 [n, c_dim] labels of n images drawn at random from the dataset (for conditional generation)."""
        return self._images.label_vectors(rng.integers(0, len(self._images), n))

    def caption_texts(self, positions: np.ndarray | Sequence[int]) -> list[str]:
        """The caption strings of the images at `positions` 0..num_images-1 (needs dataset.captions)."""
        return self._images.caption_texts(positions)


def open_dataset(cfg: Config, *, seed: int, batch_size: int, process_index: int = 0,
                 process_count: int = 1, tokenize: Tokenizer | None = None) -> Dataset:
    """Opens the dataset section `cfg` for training; `batch_size` is global, split evenly over the processes.

    Validates the settings and reads the image headers at start-up; raises DatasetConfigError naming the
    key at fault, ValueError for bad arguments. `tokenize` (texts -> int [N, 77], e.g.
    stylegan_jax.perceptual.clip_tokenizer.tokenize) is required when dataset.captions is on.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is not in [0, process_count={process_count})")
    if batch_size <= 0 or batch_size % process_count:
        raise ValueError(f"batch_size {batch_size} must be a positive multiple of process_count {process_count}")
    images = ImageSet(validate_dataset_config(cfg), tokenize)
    return Dataset(images, seed=seed, batch_size=batch_size, process_index=process_index, process_count=process_count)


def iterate_images(cfg: Config, batch_size: int, tokenize: Tokenizer | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Every readable image once, in a fixed order, unflipped and unshuffled (e.g. for real-data statistics).

    Batches are {'image': uint8 [B, H, W, C], 'label': float32 [B, c_dim]}, B <= batch_size. The
    settings are checked and the headers read on the call, before the first batch is asked for;
    `tokenize` as for open_dataset.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    images = ImageSet(validate_dataset_config(cfg), tokenize)
    batches = images.ordered_batches(batch_size)
    return ({"image": batch, "label": images.label_vectors(positions)} for batch, positions in batches)
