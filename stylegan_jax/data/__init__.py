"""Input pipeline: image folders, zips, TFRecord shards, TFDS and scikit-learn digits as tf.data batches.

    dataset = open_dataset(config.dataset, seed=0, batch_size=64, process_index=jax.process_index(),
                           process_count=jax.process_count())
    for batch in dataset.iterate(start_batch=step): ...  # {'image': uint8 NHWC, 'label': float32 one-hot}
"""
from stylegan_jax.data.config import DatasetConfig, DatasetConfigError, default_dataset_config, validate_dataset_config
from stylegan_jax.data.dataset import Dataset, DatasetInfo, iterate_images, open_dataset

__all__ = ["Dataset", "DatasetConfig", "DatasetConfigError", "DatasetInfo", "default_dataset_config",
           "iterate_images", "open_dataset", "validate_dataset_config"]
