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
def _sharded_jit(fn: Callable, devices: tuple) -> tuple[Callable, NamedSharding, NamedSharding]:
    # One jitted wrapper per (fn, devices), so that every map of the same fn reuses its compilations.
    mesh = Mesh(np.array(devices), ("batch",))
    replicated = NamedSharding(mesh, PartitionSpec())
    batched = NamedSharding(mesh, PartitionSpec("batch"))
    return jax.jit(fn, in_shardings=(replicated, batched), out_shardings=replicated), replicated, batched


class ShardedBatchMap:
    """Applies fn(params, x) to numpy batches of any size, split over a 1-D device mesh.

    Inputs are cut into chunks of at most `batch_size` (rounded up to a multiple of the device
    count); a short chunk is zero-padded to a device multiple and the padding dropped from the result.
    """

    def __init__(self, fn: Callable[[Any, jax.Array], jax.Array], params: Any, batch_size: int,
                 devices: Sequence[jax.Device] | None = None):
        devices = tuple(jax.devices() if devices is None else devices)
        self._fn, replicated, self._batched = _sharded_jit(fn, devices)
        self._params = jax.device_put(params, replicated)
        self._num_devices = len(devices)
        self._chunk = _round_up(batch_size, self._num_devices)

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        if inputs.shape[0] == 0:
            raise ValueError("ShardedBatchMap got an empty batch")
        chunk = min(self._chunk, _round_up(inputs.shape[0], self._num_devices))
        outputs = []
        for start in range(0, inputs.shape[0], chunk):
            part = inputs[start:start + chunk]
            valid = part.shape[0]
            if valid < chunk:
                part = np.concatenate([part, np.zeros((chunk - valid, *part.shape[1:]), part.dtype)])
            sharded = jax.make_array_from_callback(part.shape, self._batched, lambda index, part=part: part[index])
            result = self._fn(self._params, sharded)
            outputs.append(np.asarray(result)[:valid])
        return np.concatenate(outputs)
