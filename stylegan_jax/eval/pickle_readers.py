"""Restricted unpicklers that read weight files without torch and without running foreign code.

Only the handful of globals that a weight file legitimately needs are resolved; any other
global makes loading fail with `pickle.UnpicklingError`.
"""
from __future__ import annotations

import io
import pickle
import zipfile
from typing import Any, Callable

import numpy as np

_TORCH_STORAGE_DTYPES = {"FloatStorage": np.float32}


class _ScriptObject:
    """Stand-in for a TorchScript module: keeps its attributes and nothing else."""

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_unused) -> np.ndarray:
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride))
    return np.array(view)


class _TorchZipUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, read_storage: Callable[[str], bytes]):
        super().__init__(io.BytesIO(data))
        self._read_storage = read_storage

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            return _ScriptObject
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _TORCH_STORAGE_DTYPES:
            return _TORCH_STORAGE_DTYPES[name]
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if (module, name) == ("torch.jit._pickle", "build_intlist"):
            return list
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from a torch zip file")

    def persistent_load(self, pid: tuple) -> np.ndarray:
        kind, dtype, key, _location, numel = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {kind!r}")
        return np.frombuffer(self._read_storage(key), dtype=dtype, count=numel)


def _flatten_tensors(obj: _ScriptObject | dict, prefix: str, out: dict[str, np.ndarray]) -> None:
    for name, value in (obj if isinstance(obj, dict) else vars(obj)).items():
        if isinstance(value, (_ScriptObject, dict)):
            _flatten_tensors(value, f"{prefix}{name}.", out)
        elif isinstance(value, np.ndarray):
            out[f"{prefix}{name}"] = value


def read_torch_zip_tensors(path: str) -> dict[str, np.ndarray]:
    """Every tensor of a torch zip (TorchScript module or torch.save'd state dict) as {'dotted.name': array}."""
    with zipfile.ZipFile(path) as archive:
        pkl_names = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pkl_names) != 1:
            raise ValueError(f"{path} is not a torch zip archive (no top-level */data.pkl)")
        root = pkl_names[0][: -len("data.pkl")]
        unpickler = _TorchZipUnpickler(
            archive.read(pkl_names[0]), lambda key: archive.read(f"{root}data/{key}"))
        contents = unpickler.load()
    if not isinstance(contents, (_ScriptObject, dict)):
        raise ValueError(f"{path} holds neither a TorchScript module nor a state dict")
    tensors: dict[str, np.ndarray] = {}
    _flatten_tensors(contents, "", tensors)
    return tensors


class _NumpyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return np._core.multiarray._reconstruct  # pylint: disable=protected-access
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return np.dtype
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: only numpy arrays are allowed")


def read_numpy_pickle(path: str) -> Any:
    """Loads a pickle that may contain only containers and numpy arrays."""
    with open(path, "rb") as f:
        return _NumpyUnpickler(f).load()
