"""The readable images of a dataset config, by position, as training arrays with one-hot or caption labels."""
from __future__ import annotations

import concurrent.futures
import logging
import threading
from typing import Iterator, Sequence

import numpy as np

from stylegan_jax.data.captions import CONTEXT_LENGTH, Tokenizer, tokenize_captions
from stylegan_jax.data.config import DatasetConfig, DatasetConfigError
from stylegan_jax.data.decoding import DECODE_ERRORS, needs_upscaling, to_training_array
from stylegan_jax.data.pipeline import default_num_threads, load_batches
from stylegan_jax.data.sources import open_source
from stylegan_jax.images import image_size

logger = logging.getLogger("stylegan_jax.data")
_SHOWN = 5  # unreadable files named in a message


def _subset(size: int, max_size: int) -> np.ndarray:
    """Indices kept by max_size: all, or a fixed random subset (shuffled with seed 0, then sorted)."""
    indices = np.arange(size, dtype=np.int64)
    if 0 < max_size < size:
        np.random.RandomState(0).shuffle(indices)
        indices = np.sort(indices[:max_size])
    return indices


class ImageSet:
    """The readable images of a dataset config, at positions 0..len-1, as uint8 HWC arrays with labels.

    Start-up reads every image's header: unreadable files are dropped and listed in `bad_files`, and
    images with the wrong channel count fail (unless convert_channels). Images that fail to decode
    later are added to `bad_files` and logged. With config.captions, `captions` holds each image's
    caption and `tokens` its int32 [77] ids by `tokenize` (see stylegan_jax.data.captions).
    """

    def __init__(self, config: DatasetConfig, tokenize: Tokenizer | None = None):
        self.config = config
        self.num_threads = config.num_threads or default_num_threads()
        self.image_shape = (*image_size(config.resolution), config.channels)
        self.source = open_source(config)
        candidates = _subset(self.source.size, config.max_size)
        channels, sizes, errors = self._inspect(candidates)
        readable = channels > 0
        self.indices = candidates[readable]
        self.bad_files = [self.source.describe(i) for i in candidates[~readable]]
        self._lock = threading.Lock()
        if self.bad_files:
            shown = [f"{self.source.describe(i)} ({errors[i]})" for i in candidates[~readable][:_SHOWN]]
            logger.warning("dataset: skipping %d unreadable image file(s): %s", len(self.bad_files), "; ".join(shown))
        if not len(self.indices):
            raise DatasetConfigError("path", f"none of the {len(candidates)} images in {self.source.location} "
                                             f"can be read, e.g. {self.bad_files[:_SHOWN]}")
        self._check_channels(channels[readable])
        self._check_sizes([size for size, ok in zip(sizes, readable) if ok])
        self.labels, self.c_dim = self.source.labels() if config.use_labels else (None, 0)
        if self.labels is not None:
            self.labels = self.labels[self.indices]
        self.captions: list[str] | None = None
        self.tokens: np.ndarray | None = None
        if config.captions:
            texts = self.source.captions()
            self.captions = [texts[i] for i in self.indices]
            self.tokens = tokenize_captions(self.captions, tokenize)
            self.c_dim = CONTEXT_LENGTH

    def _inspect(self, candidates: np.ndarray) -> tuple[np.ndarray, list, dict[int, str]]:
        """Channels (0 if unreadable) and size (or None) of each candidate from its header, and the errors by index."""
        errors: dict[int, str] = {}

        def header(index: int) -> tuple[int, tuple[int, int] | None]:
            try:
                return self.source.header_of(index)
            except DECODE_ERRORS as e:
                errors[index] = str(e) or type(e).__name__
                return 0, None

        chunks = [candidates[i:i + 1024].tolist() for i in range(0, len(candidates), 1024)]
        with concurrent.futures.ThreadPoolExecutor(self.num_threads) as pool:
            headers = [h for chunk in pool.map(lambda chunk: [header(i) for i in chunk], chunks) for h in chunk]
        return np.array([c for c, _ in headers], np.int64), [size for _, size in headers], errors

    def _check_channels(self, channels: np.ndarray) -> None:
        wrong = np.flatnonzero(channels != self.config.channels)
        if len(wrong) and not self.config.convert_channels:
            examples = [self.source.describe(i) for i in self.indices[wrong[:3]]]
            raise DatasetConfigError(
                "channels", f"{len(wrong)} of {len(channels)} images have {channels[wrong[0]]} channel(s), not "
                            f"{self.config.channels} (e.g. {examples})", switch=("convert_channels", "convert them"))

    def _check_sizes(self, sizes: list) -> None:
        """Fails when images would have to be enlarged to reach the resolution (they hold too little detail)."""
        small = [i for i, size in enumerate(sizes)
                 if size is not None and needs_upscaling(size, self.config.resolution, self.config.fit)]
        if small:
            height, width = image_size(self.config.resolution)
            examples = [f"{self.source.describe(self.indices[i])} ({sizes[i][0]}x{sizes[i][1]} wide x high)"
                        for i in small[:3]]
            raise DatasetConfigError(
                "resolution", f"{len(small)} of {len(sizes)} images are smaller than {height}x{width} (height x width) "
                              f"after fit={self.config.fit!r} (e.g. {', '.join(examples)}); choose a lower resolution "
                              "or remove them")

    def __len__(self) -> int:
        return len(self.indices)

    def load(self, position: int) -> np.ndarray:
        """The training array of the image at `position` (raises one of DECODE_ERRORS)."""
        image = self.source.read(int(self.indices[position]))
        return to_training_array(image, self.config.resolution, self.config.channels, self.config.fit)

    def load_or_skip(self, position: int) -> tuple[np.ndarray, int]:
        """(image, position), or (zeros, -1) after reporting the file when it cannot be decoded."""
        try:
            return self.load(position), position
        except DECODE_ERRORS as e:
            where = self.source.describe(int(self.indices[position]))
            with self._lock:
                if where not in self.bad_files:
                    self.bad_files.append(where)
                    logger.warning("dataset: skipping unreadable image %s (%s)", where, e)
            return np.zeros(self.image_shape, np.uint8), -1

    def load_or_substitute(self, position: int) -> tuple[np.ndarray, int]:
        """(image, position) of the image at `position`, or of the next readable one when it is unreadable."""
        for step in range(len(self)):
            image, used = self.load_or_skip((position + step) % len(self))
            if used >= 0:
                return image, used
        raise DatasetConfigError("path", f"no image in {self.source.location} can be decoded")

    def one_hot(self, positions: np.ndarray) -> np.ndarray:
        """float32 [len(positions), c_dim] one-hot labels of the images at `positions` ([n, 0] without labels)."""
        labels = np.zeros((len(positions), self.c_dim), np.float32)
        if self.c_dim:
            labels[np.arange(len(positions)), self.labels[positions]] = 1
        return labels

    def label_vectors(self, positions: np.ndarray) -> np.ndarray:
        """float32 [len(positions), c_dim] labels of the images at `positions`: caption token ids, else one-hot."""
        if self.tokens is not None:
            return self.tokens[np.asarray(positions, np.int64)].astype(np.float32)
        return self.one_hot(positions)

    def caption_texts(self, positions: np.ndarray | Sequence[int]) -> list[str]:
        """The captions of the images at `positions` (DatasetConfigError when the dataset has none)."""
        if self.captions is None:
            raise DatasetConfigError("captions", f"{self.source.location} was opened without captions")
        return [self.captions[int(p)] for p in positions]

    def ordered_batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every readable image once, in order, as (images, positions) batches of at most batch_size."""
        size = len(self)
        batches = load_batches(self.load_or_skip, lambda: (np.arange(s, min(s + batch_size, size))
                                                           for s in range(0, size, batch_size)),
                               image_shape=self.image_shape, batch_size=batch_size, num_threads=self.num_threads,
                               drop_remainder=False)
        for images, positions in batches:  # unreadable images come back at position -1
            if (positions >= 0).any():
                yield images[positions >= 0], positions[positions >= 0]
