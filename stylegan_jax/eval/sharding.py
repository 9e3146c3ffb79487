"""Running a per-example function over big batches, sharded on the batch axis over all devices.

With several processes every process passes the same inputs, each computes the rows on its own
devices, and every process gets all results back.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@functools.lru_cache(maxsize=None)
def _mesh_shardings(devices: tuple) -> tuple[NamedSharding, NamedSharding]:
    mesh = Mesh(np.array(devices), ("batch",))
    return NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec("batch"))


@functools.lru_cache(maxsize=None)
def _sharded_jit(fn: Callable, devices: tuple, num_batched: int) -> Callable:
    # One jitted wrapper per (fn, devices, inputs), so that every map of the same fn reuses its compilations.
    replicated, batched = _mesh_shardings(devices)
    return jax.jit(fn, in_shardings=(replicated, *[batched] * num_batched), out_shardings=replicated)


def _pad_rows(part: np.ndarray, rows: int) -> np.ndarray:
    if part.shape[0] == rows:
        return part
    return np.concatenate([part, np.zeros((rows - part.shape[0], *part.shape[1:]), part.dtype)])


class ShardedBatchMap:
    """Applies fn(params, *batched) to numpy batches of any size, split over a 1-D device mesh.

    All batched inputs share their first (batch) axis; `params` go whole to every device. Inputs
    are cut into chunks of at most `batch_size` rows (rounded up to a multiple of the device count);
    a short chunk is zero-padded to a device multiple and the padding dropped from the result.
    """

    def __init__(self, fn: Callable[..., jax.Array], params: Any, batch_size: int,
                 devices: Sequence[jax.Device] | None = None):
        self._fn = fn
        self._devices = tuple(jax.devices() if devices is None else devices)
        self._replicated, self.sharding = _mesh_shardings(self._devices)
        self.params = jax.device_put(params, self._replicated)
        self._chunk = _round_up(batch_size, len(self._devices))

    def __call__(self, *batched: Any, params: Any = None) -> np.ndarray:
        """fn(params, *batched) for all rows, as numpy; `params` (if given) replace the stored ones for this call."""
        arrays = [np.asarray(x) for x in batched]
        total = arrays[0].shape[0] if arrays else 0
        if total == 0:
            raise ValueError("ShardedBatchMap got an empty batch")
        if any(a.ndim == 0 or a.shape[0] != total for a in arrays):
            raise ValueError(f"batched inputs differ in batch size: {[a.shape for a in arrays]}")
        params = self.params if params is None else jax.device_put(params, self._replicated)
        fn = _sharded_jit(self._fn, self._devices, len(arrays))
        chunk = min(self._chunk, _round_up(total, len(self._devices)))
        outputs = []
        for start in range(0, total, chunk):
            parts = [_pad_rows(a[start:start + chunk], chunk) for a in arrays]
            sharded = [jax.make_array_from_callback(p.shape, self.sharding, lambda index, p=p: p[index])
                       for p in parts]
            outputs.append(np.asarray(fn(params, *sharded))[:min(chunk, total - start)])
        return np.concatenate(outputs)
