"""A TFDS dataset already prepared on local (or GCS) storage, read record by record; never downloads."""
from __future__ import annotations

import numpy as np

from stylegan_jax.data._tf import tensorflow
from stylegan_jax.data.config import DatasetConfigError
from stylegan_jax.data.records import RecordSource, TFRecordReader, parse_example


def _records(file_format, paths: list[str]):
    import tensorflow_datasets as tfds

    if file_format == tfds.core.FileFormat.TFRECORD:
        return TFRecordReader(paths)
    if file_format == tfds.core.FileFormat.ARRAY_RECORD:
        from array_record.python.array_record_data_source import ArrayRecordDataSource

        return ArrayRecordDataSource(paths)
    raise DatasetConfigError("name", f"TFDS file format {file_format} is not supported (only tfrecord, array_record)")


def tfds_source(name: str, split: str, data_dir: str) -> RecordSource:
    """Split `split` of the prepared TFDS dataset `name` under `data_dir` ('' = TFDS's default folder)."""
    tensorflow()
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir or None)
    except Exception as e:  # TFDS raises many kinds (not found, bad config, unreadable metadata)
        raise DatasetConfigError("name", f"cannot open TFDS dataset {name!r}: {str(e).splitlines()[0]}") from None
    if not builder.is_prepared():
        raise DatasetConfigError("name", f"TFDS dataset {name!r} is not prepared in {builder.data_dir}; prepare it "
                                         f"beforehand (e.g. `tfds build {name} --data_dir=...` where downloads work): "
                                         "this pipeline never downloads")
    info = builder.info
    if split not in info.splits:
        raise DatasetConfigError("split", f"TFDS dataset {name!r} has no split {split!r}; it has {sorted(info.splits)}")
    image = info.features["image"] if "image" in info.features else None
    if not isinstance(image, tfds.features.Image):
        raise DatasetConfigError("name", f"TFDS dataset {name!r} has no 'image' feature of type Image")
    records = _records(info.file_format, [str(p) for p in info.splits[split].filepaths])

    def class_labels() -> tuple[np.ndarray, int]:
        label = info.features["label"] if "label" in info.features else None
        if not isinstance(label, tfds.features.ClassLabel):
            raise DatasetConfigError("use_labels", f"TFDS dataset {name!r} has no 'label' feature of type ClassLabel")
        return np.array([parse_example(records[i])[1] for i in range(len(records))], np.int64), label.num_classes

    return RecordSource(records, info.name, f"tfds:{info.full_name}/{split}", 1 if image.shape[-1] == 1 else 3,
                        class_labels)
