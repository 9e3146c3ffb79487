"""TFRecord files (local or remote) of tf.train.Example images: random access by record number, encoding and parsing."""
from __future__ import annotations

import io
import struct
from typing import Callable, Sequence

import numpy as np
import PIL.Image
from google.protobuf.message import DecodeError

from stylegan_jax import fileio
from stylegan_jax.data._tf import tensorflow
from stylegan_jax.data.decoding import decode

_HEADER_BYTES = 12  # uint64 payload length, uint32 masked CRC of the length
_FOOTER_BYTES = 4  # uint32 masked CRC of the payload


def _scan(path: str) -> list[tuple[int, int]]:
    """(offset, length) of every payload in one TFRecord file, read from the record headers alone."""
    size = fileio.getsize(path)
    records, position = [], 0
    with fileio.open_file(path, "rb") as f:
        while position < size:
            f.seek(position)
            header = f.read(_HEADER_BYTES)
            if len(header) < _HEADER_BYTES:
                break
            (length,) = struct.unpack("<Q", header[:8])
            records.append((position + _HEADER_BYTES, length))
            position += _HEADER_BYTES + length + _FOOTER_BYTES
    if position != size:
        raise ValueError(f"{path} is not a complete TFRecord file (a record runs past byte {size})")
    return records


class TFRecordReader:
    """Random access to the records of TFRecord files by global record number; one header scan at start-up."""

    def __init__(self, paths: Sequence[str]):
        self.paths = [str(p) for p in paths]
        scans = [_scan(p) for p in self.paths]
        self._file = np.repeat(np.arange(len(scans)), [len(s) for s in scans])
        self._offset, self._length = np.array([r for s in scans for r in s], np.int64).reshape(-1, 2).T

    def __len__(self) -> int:
        return len(self._file)

    def __getitem__(self, index: int) -> bytes:
        with fileio.open_file(self.paths[self._file[index]], "rb") as f:
            f.seek(int(self._offset[index]))
            data = f.read(int(self._length[index]))
        if len(data) != self._length[index]:
            raise EOFError(f"record {index} is cut short")
        return data


def encode_example(image: bytes, label: int | None) -> bytes:
    """A serialized tf.train.Example {'image': encoded image bytes, 'label': int64 (absent when None)}."""
    train = tensorflow().train
    feature = {"image": train.Feature(bytes_list=train.BytesList(value=[image]))}
    if label is not None:
        feature["label"] = train.Feature(int64_list=train.Int64List(value=[label]))
    return train.Example(features=train.Features(feature=feature)).SerializeToString()


def parse_example(record: bytes) -> tuple[bytes, int | None]:
    """(encoded image, label or None) of a record in the layout of `encode_example` (and of TFDS)."""
    try:
        feature = tensorflow().train.Example.FromString(record).features.feature
    except DecodeError as e:
        raise ValueError(f"not a tf.train.Example: {e}") from None
    if "image" not in feature or not feature["image"].bytes_list.value:
        raise ValueError("the record has no 'image' bytes")
    labels = feature["label"].int64_list.value if "label" in feature else []
    return feature["image"].bytes_list.value[0], (int(labels[0]) if labels else None)


class RecordSource:
    """Records holding one encoded image each (TFRecord shards, TFDS files), images all of one channel count."""

    def __init__(self, records: Sequence[bytes], name: str, location: str, channels: int,
                 labels: Callable[[], tuple[np.ndarray, int]]):
        self._records = records
        self._channels = channels
        self._labels = labels
        self.name = name
        self.location = location
        self.size = len(records)

    def read(self, index: int) -> PIL.Image.Image:
        image, _ = parse_example(self._records[index])
        return decode(io.BytesIO(image))

    def header_of(self, index: int) -> tuple[int, None]:
        return self._channels, None  # written at one size by the dataset tool (or TFDS): not read per record

    def describe(self, index: int) -> str:
        return f"{self.location} (record {index})"

    def labels(self) -> tuple[np.ndarray, int]:
        return self._labels()
