"""Safely unpickles an official snapshot into plain records, numpy arrays and containers.

Only the globals an official snapshot uses are resolved, each to a stand-in of ours: persistent
objects (`torch_utils.persistence._reconstruct_persistent_obj`) become PersistentRecord (their
pickled module source is dropped, never executed), torch tensors become numpy arrays,
`dnnlib.util.EasyDict` becomes a dict, and numpy arrays, scalars and dtypes are rebuilt by numpy.
"""
from __future__ import annotations

import collections
import dataclasses
import pickle
from typing import Any, BinaryIO

import numpy as np

from stylegan_jax.convert._restricted_unpickler import Global, load_restricted
from stylegan_jax.convert._torch_tensors import TORCH_GLOBALS


@dataclasses.dataclass(frozen=True)
class PersistentRecord:
    """A persistent object of an official snapshot: its class name and pickled __dict__."""

    class_name: str
    state: dict


class EasyDict(dict):
    """Stand-in for dnnlib.util.EasyDict: a dict that accepts no pickled attribute state."""

    def __setstate__(self, state: Any) -> None:
        if state:
            raise pickle.UnpicklingError("unexpected attribute state on a dnnlib.util.EasyDict")


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    if not (isinstance(meta, dict) and meta.get("type") == "class"
            and isinstance(meta.get("class_name"), str) and isinstance(meta.get("state"), dict)):
        raise pickle.UnpicklingError(
            "malformed persistent object: expected meta with type 'class', class_name and state")
    return PersistentRecord(meta["class_name"], meta["state"])


def _make_dtype(spec: Any, align: bool = False, copy: bool = True) -> np.dtype:
    del copy  # always a fresh dtype, so that BUILD cannot alter numpy's shared instances
    return np.dtype(spec, align=bool(align), copy=True)


def _reconstruct_array(cls: Any, shape: Any, typecode: Any) -> np.ndarray:
    del shape, typecode  # BUILD (ndarray.__setstate__) sets shape, dtype and data next
    if cls is not _NDARRAY:
        raise pickle.UnpicklingError(f"numpy _reconstruct may only build numpy.ndarray, got {cls!r}")
    return np.empty(0, np.int8)


def _make_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError(f"numpy scalar needs a dtype, got {type(dtype).__name__}")
    if dtype.hasobject:
        return data
    if not (isinstance(data, bytes) and len(data) == dtype.itemsize):
        raise pickle.UnpicklingError(f"numpy scalar of {dtype} needs {dtype.itemsize} bytes")
    return np.frombuffer(data, dtype)[0]


_NDARRAY = Global("numpy.ndarray")
_ARRAY_RECONSTRUCT = Global("numpy.core.multiarray._reconstruct", _reconstruct_array)
_SCALAR = Global("numpy.core.multiarray.scalar", _make_scalar)

SNAPSHOT_GLOBALS = {
    **TORCH_GLOBALS,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"):
        Global("torch_utils.persistence._reconstruct_persistent_obj", _reconstruct_persistent_obj),
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): Global("numpy.dtype", _make_dtype),
    ("numpy.core.multiarray", "_reconstruct"): _ARRAY_RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _ARRAY_RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
}


def load_snapshot_object(file: BinaryIO) -> Any:
    """Unpickles `file` with only the globals of an official snapshot allowed."""
    return load_restricted(file, SNAPSHOT_GLOBALS, "an official network snapshot")
