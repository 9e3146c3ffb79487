"""Running a per-example function over a batch in fixed-size chunks, each split over the local devices."""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Iterator, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.core import FrozenDict
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "batch"


def static_module(module: nn.Module) -> nn.Module:
    """A copy of `module` whose dict and list fields are frozen, so that it can key a compilation cache."""
    def freeze(value):
        if isinstance(value, dict):
            return FrozenDict({key: freeze(item) for key, item in value.items()})
        if isinstance(value, (list, tuple)):
            return tuple(freeze(item) for item in value)
        return value

    fields = [f.name for f in dataclasses.fields(module) if f.name not in ("parent", "name")]
    return module.clone(**{name: freeze(getattr(module, name)) for name in fields})


def map_chunks(fn: Callable[..., jax.Array], shared: Any, batched: Sequence[np.ndarray], batch_size: int,
               devices: Sequence[jax.Device] | None = None,
               static: Mapping[str, Any] | None = None) -> Iterator[np.ndarray]:
    """Yields fn(shared, first_row, *rows, **static) as numpy for consecutive chunks of the `batched` arrays.

    Each chunk holds at most `batch_size` rows (rounded up to a multiple of the device count); it
    is split over the devices, each running `fn` on its rows (shard_map) with `shared` replicated
    and `first_row` the global index of its first row (an int32 scalar). Chunks are zero-padded to
    one size, a power of two per device, so that `fn` compiles for few shapes; padding rows are
    dropped. `static` holds hashable keyword arguments fixed at compile time.
    """
    devices = tuple(jax.local_devices() if devices is None else devices)
    total = len(batched[0])
    if total == 0:
        raise ValueError("nothing to compute: the batch is empty")
    rows_per_device = -(-total // len(devices))
    per_device = min(-(-max(batch_size, 1) // len(devices)), 1 << (rows_per_device - 1).bit_length())
    chunk = per_device * len(devices)
    compiled, replicated = _compiled(fn, devices, len(batched), tuple(sorted((static or {}).items())))
    shared = jax.device_put(shared, replicated)  # also moves arrays committed to other devices (e.g. restored)
    for start in range(0, total, chunk):
        parts = [np.asarray(array[start:start + chunk]) for array in batched]
        valid = len(parts[0])
        if valid < chunk:
            parts = [np.concatenate([p, np.zeros((chunk - valid, *p.shape[1:]), p.dtype)]) for p in parts]
        yield np.asarray(compiled(shared, np.int32(start), *parts))[:valid]


@functools.lru_cache(maxsize=64)
def _compiled(fn: Callable, devices: tuple, num_batched: int, static: tuple) -> tuple[Callable, NamedSharding]:
    mesh = Mesh(np.array(devices), (AXIS,))

    def per_device(shared, start, *rows):
        first_row = start + jax.lax.axis_index(AXIS).astype(jnp.int32) * rows[0].shape[0]
        return fn(shared, first_row, *rows, **dict(static))

    specs = (PartitionSpec(), PartitionSpec()) + (PartitionSpec(AXIS),) * num_batched
    compiled = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=specs, out_specs=PartitionSpec(AXIS)))
    return compiled, NamedSharding(mesh, PartitionSpec())

