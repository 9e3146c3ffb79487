"""The tf.data machinery: loading examples on TF's threads, in order, into batches, with prefetching."""
from __future__ import annotations

import os
from typing import Callable, Iterator

import numpy as np

from stylegan_jax.data._tf import tensorflow

Loader = Callable[[int], tuple[np.ndarray, int]]


def default_num_threads() -> int:
    """TF decoding threads when the config leaves it at 0: a modest min(8, CPU count), leaving cores to JAX."""
    return min(8, os.cpu_count() or 1)


def load_batches(load: Loader, examples: Callable[[], Iterator[np.ndarray]], *, image_shape: tuple[int, int, int],
                 batch_size: int, num_threads: int, drop_remainder: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(images uint8 [B, H, W, C], positions int64 [B]) batches of `load` over the example numbers from `examples`.

    `load(example)` returns the uint8 image and the dataset position it came from (-1 for none). Examples
    are loaded in parallel on a private pool of `num_threads` TF threads, keeping their order.
    """
    tf = tensorflow()

    def load_one(example):
        image, position = tf.numpy_function(lambda e: load(int(e)), [example], (tf.uint8, tf.int64), stateful=False)
        image.set_shape(image_shape)
        position.set_shape(())
        return image, position

    dataset = tf.data.Dataset.from_generator(examples, output_signature=tf.TensorSpec([None], tf.int64)).unbatch()
    dataset = dataset.map(load_one, num_parallel_calls=num_threads, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(2)
    options = tf.data.Options()
    options.deterministic = True
    options.threading.private_threadpool_size = num_threads
    options.threading.max_intra_op_parallelism = 1
    return dataset.with_options(options).as_numpy_iterator()
