"""Where images come from: random access to the raw images (and class labels) of each kind of source."""
from __future__ import annotations

import json
import os
from typing import Protocol

import numpy as np
import PIL.Image

from stylegan_jax import fileio
from stylegan_jax.data.captions import read_captions
from stylegan_jax.data.config import TFRECORD_METADATA, DatasetConfig, DatasetConfigError
from stylegan_jax.data.decoding import decode, header, needs_upscaling
from stylegan_jax.data.files import ImageFiles
from stylegan_jax.data.records import RecordSource, TFRecordReader
from stylegan_jax.images import image_size


class Source(Protocol):
    """Random access to a dataset's raw images by index 0..size-1."""

    name: str  # a short name, e.g. the folder's
    location: str  # what identifies the data: an absolute path, a TFDS name, ...
    size: int

    def read(self, index: int) -> PIL.Image.Image:
        """Image `index`, fully decoded (raises one of decoding.DECODE_ERRORS when unreadable)."""

    def header_of(self, index: int) -> tuple[int, tuple[int, int] | None]:
        """Channels and (width, height) of image `index`, reading as little as possible (raises one of
        decoding.DECODE_ERRORS); the size is None where the source fixes it (records, upsampled digits)."""

    def describe(self, index: int) -> str:
        """Where image `index` is, for messages."""

    def labels(self) -> tuple[np.ndarray, int]:
        """int64 class labels of all images and the class count (raises DatasetConfigError when there are none)."""


class FileSource:
    """The PNG/JPEG files of a folder or zip archive."""

    def __init__(self, path: str):
        self._files = ImageFiles(path)
        self.name = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
        self.location = fileio.absolute(path)
        self.size = len(self._files.names)

    def read(self, index: int) -> PIL.Image.Image:
        with self._files.open(self._files.names[index]) as f:
            return decode(f)

    def header_of(self, index: int) -> tuple[int, tuple[int, int] | None]:
        with self._files.open(self._files.names[index]) as f:
            return header(f)

    def describe(self, index: int) -> str:
        return self._files.describe(self._files.names[index])

    def labels(self) -> tuple[np.ndarray, int]:
        return self._files.labels()

    def captions(self) -> list[str]:
        """The caption of every image (see stylegan_jax.data.captions)."""
        return read_captions(self._files)


class DigitsSource:
    """scikit-learn's 1,797 8x8 handwritten digits (values 0..16 scaled to 0..255), labels 0-9."""

    name = "digits"
    location = "sklearn.datasets.load_digits"

    def __init__(self, channels: int):
        from sklearn.datasets import load_digits

        digits = load_digits()
        self._images = np.round(digits.images * (255 / 16)).astype(np.uint8)
        self._labels = digits.target.astype(np.int64)
        self._channels = channels
        self.size = len(self._images)

    def read(self, index: int) -> PIL.Image.Image:
        return PIL.Image.fromarray(self._images[index], "L").convert("L" if self._channels == 1 else "RGB")

    def header_of(self, index: int) -> tuple[int, tuple[int, int] | None]:
        return self._channels, None  # 8x8 originals, upsampled to any resolution by design

    def describe(self, index: int) -> str:
        return f"digit {index}"

    def labels(self) -> tuple[np.ndarray, int]:
        return self._labels, 10


def _tfrecord_source(path: str, resolution: int | tuple[int, int], fit: str) -> RecordSource:
    try:
        with fileio.open_file(fileio.join(path, TFRECORD_METADATA)) as f:
            meta = json.load(f)
        shards, channels, labels, c_dim = meta["shards"], meta["channels"], meta["labels"], meta["c_dim"]
        records = TFRecordReader([fileio.join(path, shard) for shard in shards])
        stored = image_size(meta.get("resolution", resolution))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DatasetConfigError("path", f"{path} is not a readable TFRecord dataset: "
                                         f"{type(e).__name__}: {e}") from None
    if needs_upscaling(stored[::-1], resolution, fit):
        raise DatasetConfigError("resolution", f"{path} holds {stored[0]}x{stored[1]} images, smaller than "
                                               f"{'x'.join(map(str, image_size(resolution)))}; write them again "
                                               "with stylegan_jax.dataset_tool at this resolution")
    if labels is not None and len(labels) != len(records):
        raise DatasetConfigError("path", f"{TFRECORD_METADATA} in {path} lists {len(labels)} labels for "
                                         f"{len(records)} records")

    def stored_labels() -> tuple[np.ndarray, int]:
        if labels is None:
            raise DatasetConfigError("use_labels", f"{path} was written without labels (dataset_tool --use-labels)")
        return np.array(labels, np.int64), c_dim

    return RecordSource(records, meta["name"], fileio.absolute(path), channels, stored_labels)


def open_source(config: DatasetConfig) -> Source:
    """The source that `config` names (cheap: lists files or reads metadata, decodes no image)."""
    if config.source in ("folder", "zip"):
        return FileSource(config.path)
    if config.source == "tfrecord":
        return _tfrecord_source(config.path, config.resolution, config.fit)
    if config.source == "tfds":
        from stylegan_jax.data.tfds_source import tfds_source

        return tfds_source(config.name, config.split, config.data_dir)
    return DigitsSource(config.channels)
