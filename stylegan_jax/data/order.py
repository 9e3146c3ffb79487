"""The order in which training visits examples: a pure function of (seed, global batch number)."""
from __future__ import annotations

import itertools
from typing import Iterator

import numpy as np


def epoch_order(seed: int, epoch: int, size: int) -> np.ndarray:
    """Example numbers 0..size-1 in the shuffled order of one epoch, fixed by (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(size)


def process_batches(seed: int, size: int, global_batch: int, process_index: int, process_count: int,
                    start_batch: int = 0) -> Iterator[np.ndarray]:
    """This process's example numbers for global batches start_batch, start_batch + 1, ... (endless).

    The examples are the epochs' orders one after another; global batch k is stream positions
    [k * global_batch, (k + 1) * global_batch), and process p takes the p-th contiguous slice of it,
    so the processes' slices concatenated in process order are the global batch.
    """
    per_process = global_batch // process_count
    orders: dict[int, np.ndarray] = {}  # the epochs the current batch spans
    for batch in itertools.count(start_batch):
        first = batch * global_batch + process_index * per_process
        epochs, offsets = np.divmod(np.arange(first, first + per_process, dtype=np.int64), size)
        orders = {e: orders[e] if e in orders else epoch_order(seed, e, size) for e in np.unique(epochs).tolist()}
        examples = np.empty(per_process, np.int64)
        for epoch, order in orders.items():
            examples[epochs == epoch] = order[offsets[epochs == epoch]]
        yield examples
