"""Decodes torch tensors from a plain pickle into numpy arrays, without torch.

Under plain `pickle.dump`, a tensor is a call `torch._utils._rebuild_tensor_v2(storage, offset,
size, stride, requires_grad, backward_hooks[, metadata])` (a Parameter wraps that in
`torch._utils._rebuild_parameter[_with_state]`), and each storage is a call
`torch.storage._load_from_bytes(data)`, where `data` is a legacy (non-zip) `torch.save` stream:
five pickles (magic number, protocol version, system info, the storage as a persistent id
('storage', <torch.XxxStorage>, key, location, numel, view_metadata), the list of storage keys)
followed, per key, by the element count as a little-endian int64 and the raw little-endian data.

A torch zip file (torch.save since 1.6, TorchScript) pickles the same tensor calls, with each
storage as a persistent id ('storage', <torch.XxxStorage>, key, location, numel) naming its file.

Every tensor is checked against its storage before any data is touched: its view must lie
inside the storage and may not hold more elements than the storage (no stride-0 blow-ups).
Tensors are read-only views of their storage, so they cost no memory until used.
"""
from __future__ import annotations

import io
import pickle
from typing import Any

import ml_dtypes
import numpy as np

from stylegan_jax.convert._restricted_unpickler import Global, RestrictedUnpickler, load_restricted, short_repr

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

STORAGE_DTYPES = {
    "FloatStorage": np.dtype(np.float32),
    "DoubleStorage": np.dtype(np.float64),
    "HalfStorage": np.dtype(np.float16),
    "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16),
    "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8),
    "BoolStorage": np.dtype(np.bool_),
}

STORAGE_CLASSES = {("torch", name): Global(f"torch.{name}", payload=dtype)
                    for name, dtype in STORAGE_DTYPES.items()}
_STREAM = "a torch storage stream"


class Storage:
    """A decoded torch storage: a flat, read-only numpy array of its elements."""

    __slots__ = ("data",)

    def __init__(self, data: np.ndarray):
        self.data = data

    def __setstate__(self, state: Any) -> None:
        raise pickle.UnpicklingError("refusing to set state on a torch storage")


class _StorageUnpickler(RestrictedUnpickler):
    def __init__(self, file):
        super().__init__(file, STORAGE_CLASSES, _STREAM)

    def persistent_load(self, pid: Any) -> tuple[np.dtype, str, int]:
        if not (isinstance(pid, tuple) and len(pid) == 6):
            raise pickle.UnpicklingError(f"unexpected persistent id in {_STREAM}: {short_repr(pid)}")
        if pid[5] is not None:
            raise pickle.UnpicklingError("storage views (view_metadata) are not supported")
        return storage_id(pid[:5])


def storage_id(pid: Any) -> tuple[np.dtype, str, int]:
    """(dtype, key, element count) of a persistent id ('storage', <torch.XxxStorage>, key, location, numel)."""
    if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
        raise pickle.UnpicklingError(f"unexpected persistent id {short_repr(pid)}")
    _, storage_class, key, _, numel = pid
    if not (isinstance(storage_class, Global) and isinstance(storage_class.payload, np.dtype)):
        raise pickle.UnpicklingError(f"unexpected storage class {short_repr(storage_class)}")
    if not (isinstance(key, (str, int)) and type(numel) is int and numel >= 0):
        raise pickle.UnpicklingError(f"malformed storage id {short_repr(pid)}")
    return storage_class.payload, str(key), numel


def load_storage(data: bytes) -> Storage:
    """Decodes the legacy torch.save stream of one storage (the argument of _load_from_bytes)."""
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError(f"storage data must be bytes, got {type(data).__name__}")
    f = io.BytesIO(data)
    header = [load_restricted(f, {}, _STREAM) for _ in range(3)]
    if header[:2] != [LEGACY_MAGIC, LEGACY_PROTOCOL]:
        raise pickle.UnpicklingError("storage bytes are not a legacy torch.save stream (bad magic number or protocol)")
    if not (isinstance(header[2], dict) and header[2].get("little_endian") is True):
        raise pickle.UnpicklingError("only little-endian torch storages are supported")
    dtype, key, numel = _StorageUnpickler(f).load()
    keys = load_restricted(f, {}, _STREAM)
    if keys != [key]:
        raise pickle.UnpicklingError(f"storage stream lists keys {keys!r}, expected [{key!r}]")
    count = int.from_bytes(f.read(8), "little", signed=True)
    start, size = f.tell(), numel * dtype.itemsize
    if count != numel or len(data) - start < size:
        raise pickle.UnpicklingError(f"storage {short_repr(key)} is truncated or inconsistent: "
                                     f"expected {numel} elements")
    return storage_from_bytes(memoryview(data)[start:start + size], dtype)


def storage_from_bytes(raw: Any, dtype: np.dtype) -> Storage:
    """A Storage over little-endian raw bytes (no copy on little-endian hosts)."""
    return Storage(np.frombuffer(raw, dtype.newbyteorder("<")).astype(dtype, copy=False))


def rebuild_tensor(storage: Storage, offset: int, size: tuple, stride: tuple, requires_grad: bool,
                   backward_hooks: Any, metadata: Any = None) -> np.ndarray:
    """Returns the tensor view (offset, size, stride) of a storage as a read-only array, after checking it fits."""
    del requires_grad, backward_hooks, metadata  # autograd details, meaningless for numpy
    if not isinstance(storage, Storage):
        raise pickle.UnpicklingError(f"tensor storage must be a torch storage, got {type(storage).__name__}")
    shape, strides = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    offset = _int_tuple((offset,), "offset")[0]
    if len(shape) != len(strides):
        raise pickle.UnpicklingError(f"tensor size {shape} and stride {strides} differ in length")
    data = storage.data
    numel = int(np.prod(shape, dtype=object))
    if numel == 0:
        return np.zeros(shape, data.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(shape, strides))
    if last >= data.size or numel > data.size:
        raise pickle.UnpicklingError(
            f"tensor view (offset {offset}, size {short_repr(shape)}, stride {short_repr(strides)}) "
            f"does not fit its storage of {data.size} elements")
    return np.lib.stride_tricks.as_strided(
        data[offset:], shape, tuple(s * data.itemsize for s in strides), writeable=False)


def rebuild_parameter(data: np.ndarray, requires_grad: bool, backward_hooks: Any, state: Any = None) -> np.ndarray:
    """Returns the tensor data of a pickled torch Parameter."""
    del requires_grad, backward_hooks, state
    if not isinstance(data, np.ndarray):
        raise pickle.UnpicklingError(f"parameter data must be a tensor, got {type(data).__name__}")
    return data


def _int_tuple(values: Any, what: str) -> tuple[int, ...]:
    if not (isinstance(values, (tuple, list)) and all(type(v) is int and v >= 0 for v in values)):
        raise pickle.UnpicklingError(f"tensor {what} must be non-negative integers, got {short_repr(values)}")
    return tuple(values)


TORCH_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): Global("torch._utils._rebuild_tensor_v2", rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): Global("torch._utils._rebuild_parameter", rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"):
        Global("torch._utils._rebuild_parameter_with_state", rebuild_parameter),
    ("torch.storage", "_load_from_bytes"): Global("torch.storage._load_from_bytes", load_storage),
}
