"""The example order of training (stylegan_jax.data.order): epochs, resumption and process shards."""
import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stylegan_jax.data.order import epoch_order, process_batches


def _take(iterator, count):
    return list(itertools.islice(iterator, count))


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 40), per_process=st.integers(1, 9), process_count=st.integers(1, 4),
       seed=st.integers(0, 2**31), start=st.integers(0, 30))
def test_shards_resume_and_epochs(size, per_process, process_count, seed, start):
    global_batch = per_process * process_count
    whole = _take(process_batches(seed, size, global_batch, 0, 1), start + 5)
    stream = np.concatenate(whole)
    epochs = len(stream) // size
    for epoch in range(epochs):  # every epoch visits each example once, in the order fixed by (seed, epoch)
        np.testing.assert_array_equal(stream[epoch * size:(epoch + 1) * size], epoch_order(seed, epoch, size))
    resumed = [_take(process_batches(seed, size, global_batch, p, process_count, start), 5)
               for p in range(process_count)]
    for step in range(5):
        np.testing.assert_array_equal(np.concatenate([r[step] for r in resumed]), whole[start + step])


def test_seeds_and_epochs_differ():
    assert not np.array_equal(epoch_order(0, 0, 100), epoch_order(1, 0, 100))
    assert not np.array_equal(epoch_order(0, 0, 100), epoch_order(0, 1, 100))
    np.testing.assert_array_equal(epoch_order(3, 2, 100), epoch_order(3, 2, 100))
