"""Reads the arrays of untrusted zip files without torch: torch zips (torch.save'd state dicts,
TorchScript modules) and numpy .npz files.

A torch zip's `data.pkl` is read with the restricted unpickler of _torch_tensors; an .npz holds
only .npy members of numeric or string dtypes, checked against their headers (never pickles).
Every member is read with a size limit fixed before inflating it (its declared size, which may
not exceed MAX_RATIO times its compressed size, nor what the pickle says a storage holds),
within an overall budget of MAX_RATIO times the archive's size: zip bombs are refused unread.
"""
from __future__ import annotations

import collections
import contextlib
import io
import os
import pickle
import zipfile
import zlib
from typing import Any, Iterator

import numpy as np

from stylegan_jax.convert._restricted_unpickler import RestrictedUnpickler, short_repr
from stylegan_jax.convert._torch_tensors import (
    STORAGE_CLASSES, TORCH_GLOBALS, Storage, storage_from_bytes, storage_id)
from stylegan_jax.convert.numpy_pickle import NUMERIC_KINDS

MAX_RATIO = 50  # torch stores members uncompressed; pickles deflate about 10:1
SMALL_MEMBER = 1 << 20  # bytes any member may inflate to, whatever its compressed size
MAX_DEPTH = 64


class ScriptObject:
    """Stand-in for a TorchScript module: keeps its attributes and nothing else."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"TorchScript object state must be a dict, got {type(state).__name__}")
        self.__dict__.update(state)


class LimitedArchive:
    """Reads members of a zip with per-member and overall inflation limits (pickle.UnpicklingError beyond)."""

    def __init__(self, archive: zipfile.ZipFile, file_size: int):
        self._archive = archive
        self._budget = MAX_RATIO * file_size + SMALL_MEMBER

    def read(self, name: str, expected_size: int | None = None) -> bytes:
        """The member's bytes (its first `expected_size` bytes when given)."""
        try:
            info = self._archive.getinfo(name)
        except KeyError:
            raise pickle.UnpicklingError(f"torch zip lacks member {short_repr(name)}") from None
        limit = max(SMALL_MEMBER, MAX_RATIO * info.compress_size)
        if expected_size is not None and info.file_size < expected_size:
            raise pickle.UnpicklingError(f"{name} holds {info.file_size} bytes, fewer than its "
                                         f"declared {expected_size}")
        size = info.file_size if expected_size is None else expected_size
        if size > limit or size > self._budget:
            raise pickle.UnpicklingError(f"{name} would inflate {info.compress_size} bytes to {size}: "
                                         "refusing a zip bomb")
        self._budget -= size
        with self._archive.open(info) as member:
            data = member.read(size)
        if len(data) != size:
            raise pickle.UnpicklingError(f"{name} is truncated")
        return data


class _TorchZipUnpickler(RestrictedUnpickler):
    def __init__(self, archive: LimitedArchive, root: str):
        allowed = {**TORCH_GLOBALS, **STORAGE_CLASSES, ("collections", "OrderedDict"): collections.OrderedDict,
                   ("torch.jit._pickle", "build_intlist"): list}
        super().__init__(io.BytesIO(archive.read(f"{root}data.pkl")), allowed, "a torch weights file")
        self._archive, self._root = archive, root
        self._storages: dict[str, Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            return ScriptObject
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Storage:
        dtype, key, numel = storage_id(pid)
        if key not in self._storages:
            raw = self._archive.read(f"{self._root}data/{key}", numel * dtype.itemsize)
            self._storages[key] = storage_from_bytes(raw, dtype)
        storage = self._storages[key]
        if storage.data.dtype != dtype or storage.data.size != numel:
            raise pickle.UnpicklingError(f"storage {short_repr(key)} is declared twice, differently")
        return storage


def _flatten_tensors(obj: ScriptObject | dict, prefix: str, out: dict[str, np.ndarray], depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise pickle.UnpicklingError(f"modules nested more than {MAX_DEPTH} deep")
    for name, value in (obj if isinstance(obj, dict) else vars(obj)).items():
        if isinstance(value, (ScriptObject, dict)):
            _flatten_tensors(value, f"{prefix}{name}.", out, depth + 1)
        elif isinstance(value, np.ndarray):
            out[f"{prefix}{name}"] = value


@contextlib.contextmanager
def _open_zip(path: str | os.PathLike) -> Iterator[tuple[zipfile.ZipFile, LimitedArchive]]:
    try:
        with zipfile.ZipFile(path) as zf:
            yield zf, LimitedArchive(zf, os.path.getsize(path))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, zlib.error) as error:
        raise ValueError(f"{os.fspath(path)}: damaged zip file ({error})") from None


def read_torch_zip_tensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of a torch zip as {'dotted.name': read-only array}; pickle.UnpicklingError if unsafe."""
    with _open_zip(path) as (zf, archive):
        pkl_names = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pkl_names) != 1:
            raise ValueError(f"{os.fspath(path)} is not a torch zip archive (no single top-level */data.pkl)")
        contents = _TorchZipUnpickler(archive, pkl_names[0][: -len("data.pkl")]).load()
    if not isinstance(contents, (ScriptObject, dict)):
        raise ValueError(f"{os.fspath(path)} holds neither a TorchScript module nor a state dict")
    tensors: dict[str, np.ndarray] = {}
    _flatten_tensors(contents, "", tensors)
    return tensors


def read_npz_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an .npz as {name: read-only array}; refuses pickled, oversized or inconsistent members."""
    with _open_zip(path) as (zf, archive):
        return {name[:-len(".npy")]: _npy_array(archive.read(name), name)
                for name in zf.namelist() if name.endswith(".npy")}


def _npy_array(data: bytes, name: str) -> np.ndarray:
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in read_header:
            raise ValueError(f"unsupported .npy version {version}")
        shape, fortran, dtype = read_header[version](f)
    except ValueError as error:
        raise ValueError(f"{name}: not a .npy array ({error})") from None
    if not (dtype.kind in NUMERIC_KINDS + "U" and dtype.fields is None and dtype.subdtype is None):
        raise ValueError(f"{name}: arrays of dtype {dtype} are not allowed")
    count = int(np.prod(shape, dtype=object))
    if len(data) - f.tell() != count * dtype.itemsize:
        raise ValueError(f"{name}: {len(data) - f.tell()} bytes of data for shape {shape} and dtype {dtype}")
    array = np.frombuffer(data, dtype, count, f.tell())
    return array.reshape(shape, order="F" if fortran else "C")
