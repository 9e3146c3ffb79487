"""The tf.data input pipeline (stylegan_jax.data) on small synthetic folders, zips, digits, TFDS and UTKFace."""
import functools
import json
import logging
import time
import zipfile

import numpy as np
import PIL.Image
import pytest

from conftest import SHARED
from stylegan_jax.data import (DatasetConfigError, default_dataset_config, iterate_images, open_dataset,
                               validate_dataset_config)
from stylegan_jax.data.decoding import to_training_array

RES = 16
NUM_LABELLED = 12


def _save(path, array, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(array).save(path, **kwargs)


def _coded_image(index: int, label: int, height: int, width: int) -> np.ndarray:
    """Red = 20 * index, green = 60 * label (constant, so they survive resizing), blue = a left-to-right ramp."""
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = 20 * index
    image[..., 1] = 60 * label
    image[..., 2] = np.linspace(0, 255, width)[None, :]
    return image


def _decode(image: np.ndarray) -> tuple[int, int, bool]:
    """(index, label, mirrored) of an image made by _coded_image, after crop and resize."""
    ramp = image[RES // 2, :, 2].astype(int)
    return round(image[..., 0].mean() / 20), round(image[..., 1].mean() / 60), bool(ramp[0] > ramp[-1])


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """12 PNGs of assorted sizes in two sub-folders; dataset.json gives image i the label i % 3."""
    root = tmp_path_factory.mktemp("labelled")
    entries = []
    for i in range(NUM_LABELLED):
        name = f"{'ab'[i % 2]}/img{i:02d}.png"
        _save(root / name, _coded_image(i, i % 3, 20 + 3 * i, 24 + (5 * i) % 17))
        entries.append([name, i % 3])
    (root / "dataset.json").write_text(json.dumps({"labels": entries}))
    return root


def _batches(dataset, count, start=0):
    iterator = dataset.iterate(start)
    return [next(iterator) for _ in range(count)]


def _config(path, **overrides):
    return dict(source="folder", path=str(path), resolution=RES, **overrides)


def test_shapes_dtypes_and_formats(tmp_path):
    for i, (size, suffix) in enumerate([((40, 30), ".png"), ((17, 64), ".jpg"), ((32, 32), ".jpeg")]):
        _save(tmp_path / f"img{i}{suffix}", np.random.default_rng(i).integers(0, 256, (*size, 3), dtype=np.uint8))
    dataset = open_dataset(_config(tmp_path), seed=0, batch_size=4)
    batch = _batches(dataset, 1)[0]
    assert batch["image"].shape == (4, RES, RES, 3) and batch["image"].dtype == np.uint8
    assert batch["label"].shape == (4, 0) and batch["label"].dtype == np.float32
    assert dataset.info.num_images == 3 and dataset.info.c_dim == 0 and dataset.bad_files == []
    assert dataset.info.identity.startswith(f"{tmp_path.name}-{RES}-")


def test_centre_crop_then_antialiased_resize():
    wide = np.zeros((32, 96, 3), np.uint8)
    wide[:, :32, 0], wide[:, 32:64, 1], wide[:, 64:, 2] = 255, 255, 255  # red | green | blue thirds
    np.testing.assert_array_equal(to_training_array(PIL.Image.fromarray(wide), 8, 3), np.full((8, 8, 3), [0, 255, 0]))
    tall = np.transpose(wide, (1, 0, 2))
    np.testing.assert_array_equal(to_training_array(PIL.Image.fromarray(tall), 8, 3), np.full((8, 8, 3), [0, 255, 0]))
    checker = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)  # 1-pixel checkerboard: aliases if point-sampled
    small = to_training_array(PIL.Image.fromarray(checker), 16, 1)
    assert small.shape == (16, 16, 1) and np.abs(small.astype(int) - 128).max() <= 3
    gray = to_training_array(PIL.Image.fromarray(checker), 64, 3)
    assert gray.shape == (64, 64, 3) and np.array_equal(gray[..., 0], checker) and np.array_equal(gray[..., 2], checker)


def test_dataset_json_labels_stay_with_their_images(labelled):
    dataset = open_dataset(_config(labelled, use_labels=True), seed=3, batch_size=8)
    assert dataset.info.c_dim == 3 and dataset.info.num_images == NUM_LABELLED
    for batch in _batches(dataset, 4):
        for image, label in zip(batch["image"], batch["label"]):
            index, coded_label, _ = _decode(image)
            assert coded_label == index % 3 and np.array_equal(label, np.eye(3, dtype=np.float32)[index % 3])


def test_sub_folder_labels(tmp_path):
    for i in range(6):
        _save(tmp_path / ["cat", "dog", "emu"][i % 3] / f"{i}.png", _coded_image(i, i % 3, 16, 16))
    batches = list(iterate_images(_config(tmp_path, use_labels=True), 4))
    for batch in batches:
        for image, label in zip(batch["image"], batch["label"]):
            assert np.argmax(label) == _decode(image)[1] and label.sum() == 1
    _save(tmp_path / "stray.png", _coded_image(0, 0, 16, 16))
    with pytest.raises(DatasetConfigError, match="dataset.use_labels: .* class sub-folder"):
        open_dataset(_config(tmp_path, use_labels=True), seed=0, batch_size=4)


def test_xflip_adds_one_mirrored_copy_of_each_image(labelled):
    dataset = open_dataset(_config(labelled, xflip=True), seed=0, batch_size=2 * NUM_LABELLED)
    epoch = _batches(dataset, 1)[0]["image"]
    seen = sorted(_decode(image)[::2] for image in epoch)
    assert seen == sorted((i, flip) for i in range(NUM_LABELLED) for flip in (False, True))
    once = np.concatenate([b["image"] for b in iterate_images(_config(labelled, xflip=True), 5)])
    assert len(once) == NUM_LABELLED and not any(_decode(image)[2] for image in once)


def test_same_seed_same_batches_other_seed_other_batches(labelled):
    def stream(seed):
        return np.stack([b["image"] for b in _batches(open_dataset(_config(labelled), seed=seed, batch_size=5), 3)])

    np.testing.assert_array_equal(stream(7), stream(7))
    assert not np.array_equal(stream(7), stream(8))


def test_resume_matches_the_uninterrupted_stream_without_decoding_skipped_images(labelled, monkeypatch):
    dataset = open_dataset(_config(labelled, xflip=True, use_labels=True), seed=1, batch_size=5)
    reference = _batches(dataset, 9)  # 45 examples: crosses the 24-example epochs twice
    for start in (1, 4, 5):
        for got, want in zip(_batches(dataset, 9 - start, start), reference[start:]):
            np.testing.assert_array_equal(got["image"], want["image"])
            np.testing.assert_array_equal(got["label"], want["label"])
    from stylegan_jax.data.image_set import ImageSet

    loads = []
    original = ImageSet.load
    monkeypatch.setattr(ImageSet, "load", lambda self, position: loads.append(position) or original(self, position))
    next(dataset.iterate(1000))
    assert len(loads) <= 8 * 5, "resuming at batch 1000 must not decode the images of the skipped batches"


def test_process_shards_concatenate_to_the_global_batch(labelled):
    config = _config(labelled, use_labels=True)
    whole = _batches(open_dataset(config, seed=5, batch_size=8), 4)
    parts = [_batches(open_dataset(config, seed=5, batch_size=8, process_index=p, process_count=2), 4) for p in (0, 1)]
    for step in range(4):
        assert parts[0][step]["image"].shape[0] == 4
        for key in ("image", "label"):
            np.testing.assert_array_equal(np.concatenate([parts[0][step][key], parts[1][step][key]]), whole[step][key])


def test_unreadable_files_are_reported_and_skipped(tmp_path, caplog):
    for i in range(4):
        _save(tmp_path / f"good{i}.png", _coded_image(i, 0, 16, 16))
    (tmp_path / "garbage.png").write_bytes(b"not an image at all")
    _save(tmp_path / "truncated.jpg", np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = (tmp_path / "truncated.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[:len(data) // 2])  # the header survives, the pixels do not
    with caplog.at_level(logging.WARNING, logger="stylegan_jax.data"):
        dataset = open_dataset(_config(tmp_path), seed=0, batch_size=5)
        assert dataset.bad_files == [str(tmp_path / "garbage.png")]  # unreadable header: dropped at start-up
        assert "skipping 1 unreadable image file(s)" in caplog.text and "garbage.png" in caplog.text
        batches = _batches(dataset, 4)  # the truncated JPEG only fails when decoded: another image takes its place
        assert all(b["image"].shape == (5, RES, RES, 3) for b in batches)
        assert dataset.bad_files == [str(tmp_path / "garbage.png"), str(tmp_path / "truncated.jpg")]
        assert "truncated.jpg" in caplog.text
    once = list(iterate_images(_config(tmp_path), 3))
    assert sum(len(b["image"]) for b in once) == 4
    (tmp_path / "truncated.jpg").unlink()
    for i in range(4):
        (tmp_path / f"good{i}.png").write_bytes(b"")
    with pytest.raises(DatasetConfigError, match="dataset.path: none of the 5 images .* can be read"):
        open_dataset(_config(tmp_path), seed=0, batch_size=4)


def test_channel_mismatch_fails_at_start_up(tmp_path):
    for i in range(3):
        _save(tmp_path / f"gray{i}.png", np.full((20, 20), 60 * i, np.uint8))
    with pytest.raises(DatasetConfigError, match=r"dataset.channels: 3 of 3 images have 1 channel\(s\), not 3 .*; "
                                                 r"set dataset.convert_channels=True to convert them$"):
        open_dataset(_config(tmp_path, channels=3), seed=0, batch_size=2)
    converted = _batches(open_dataset(_config(tmp_path, convert_channels=True), seed=0, batch_size=3), 1)[0]["image"]
    assert converted.shape == (3, RES, RES, 3) and np.all(converted[..., 0] == converted[..., 2])
    gray = next(iterate_images(_config(tmp_path, channels=1), 3))["image"]
    assert gray.shape == (3, RES, RES, 1) and sorted(gray[:, 0, 0, 0]) == [0, 60, 120]


@pytest.mark.parametrize("override, message", [
    (dict(resolution=48), "dataset.resolution: must have sides that are powers of two"),
    (dict(resolution="32by64"), "dataset.resolution: must be one side or HxW"),
    (dict(resolution="32x48"), "dataset.resolution: must have sides that are powers of two .* got '32x48'"),
    (dict(resolution=True), "dataset.resolution: expected one side or HxW"),
    (dict(fit="pad"), "dataset.fit: must be one of crop, letterbox, got 'pad'"),
    (dict(channels=2), "dataset.channels: must be 1 or 3, got 2"),
    (dict(source="lmdb"), "dataset.source: unknown source 'lmdb'"),
    (dict(path="/no/such/folder"), "dataset.path: /no/such/folder does not exist"),
    (dict(path=""), "dataset.path: required for source='folder'"),
    (dict(source="tfrecord"), "dataset.path: .* holds no metadata.json"),
    (dict(source="tfds"), "dataset.name: required for source='tfds'"),
    (dict(max_size=-1), "dataset.max_size: must be >= 0"),
    (dict(xflip=1), "dataset.xflip: expected bool"),
    (dict(resolutoin=64), "dataset.resolutoin: unknown key"),
])
def test_bad_settings_name_the_key(labelled, override, message):
    with pytest.raises(DatasetConfigError, match=message):
        validate_dataset_config({**_config(labelled), **override})


def test_config_dict_with_defaults():
    cfg = default_dataset_config()
    cfg.update(source="digits", resolution=8, max_size=10)
    config = validate_dataset_config(cfg)
    assert config.resolution == 8 and config.channels == 3 and not config.xflip
    dataset = open_dataset(cfg, seed=0, batch_size=2)
    assert dataset.info.num_images == 10 and next(dataset.iterate())["image"].shape == (2, 8, 8, 3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size 6 must be a positive multiple of process_count 4"):
        open_dataset(dict(source="digits"), seed=0, batch_size=6, process_count=4)
    with pytest.raises(ValueError, match="process_index 2 is not in"):
        open_dataset(dict(source="digits"), seed=0, batch_size=4, process_index=2, process_count=2)


def test_zip_reads_like_the_folder(labelled, tmp_path):
    archive = tmp_path / "labelled.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(labelled.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(labelled).as_posix())
    from_zip = open_dataset(dict(_config(archive, use_labels=True), source="zip"), seed=2, batch_size=6)
    from_folder = open_dataset(_config(labelled, use_labels=True), seed=2, batch_size=6)
    assert from_zip.info.name == "labelled" and from_zip.info.c_dim == 3
    for a, b in zip(_batches(from_zip, 3), _batches(from_folder, 3)):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])


def test_max_size_keeps_a_fixed_subset(labelled):
    def indices(seed):
        return sorted(_decode(image)[0] for image in _batches(open_dataset(
            _config(labelled, max_size=5), seed=seed, batch_size=5), 1)[0]["image"])

    assert len(set(indices(0))) == 5 and indices(0) == indices(1)


def test_sample_labels(labelled):
    dataset = open_dataset(_config(labelled, use_labels=True), seed=0, batch_size=4)
    labels = dataset.sample_labels(600, np.random.default_rng(0))
    assert labels.shape == (600, 3) and labels.dtype == np.float32 and np.all(labels.sum(1) == 1)
    assert np.all(np.abs(labels.mean(0) - 1 / 3) < 0.07)
    unlabelled = open_dataset(_config(labelled), seed=0, batch_size=4)
    assert unlabelled.sample_labels(5, np.random.default_rng(0)).shape == (5, 0)


@pytest.mark.parametrize("channels", [1, 3])
def test_digits(channels):
    dataset = open_dataset(dict(source="digits", resolution=32, channels=channels, use_labels=True), seed=0,
                           batch_size=16)
    batch = _batches(dataset, 1)[0]
    assert dataset.info.num_images == 1797 and dataset.info.c_dim == 10 and dataset.info.name == "digits"
    assert batch["image"].shape == (16, 32, 32, channels) and batch["image"].dtype == np.uint8
    assert batch["image"].min() == 0 and batch["image"].max() >= 200  # black background, bright strokes
    assert np.all(batch["label"].sum(1) == 1) and batch["label"].shape == (16, 10)
    first = next(iterate_images(dict(source="digits", resolution=8, channels=1), 4))["image"][0, :, :, 0]
    from sklearn.datasets import load_digits

    np.testing.assert_array_equal(first, np.round(load_digits().images[0] * 255 / 16))


def test_tfds_not_prepared_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetConfigError, match="dataset.name: TFDS dataset 'mnist' is not prepared in .*"
                                                 "never downloads"):
        open_dataset(dict(source="tfds", name="mnist", data_dir=str(tmp_path), resolution=32), seed=0, batch_size=4)
    with pytest.raises(DatasetConfigError, match="dataset.name: cannot open TFDS dataset 'no_such_dataset_xyz'"):
        open_dataset(dict(source="tfds", name="no_such_dataset_xyz", data_dir=str(tmp_path)), seed=0, batch_size=4)


@functools.cache
def _local_tfds_builder():
    import tensorflow_datasets as tfds

    class LocalBuilder(tfds.dataset_builders.TfDataBuilder):
        url_infos = None  # else download_and_prepare looks for a checksums file beside the builder's code

    return LocalBuilder


@pytest.mark.parametrize("file_format", ["tfrecord", "array_record"])
def test_tfds_prepared_locally(tmp_path, file_format):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    images = np.stack([_coded_image(i, i % 4, 20, 30) for i in range(10)])
    features = tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(20, 30, 3)),
                                           "label": tfds.features.ClassLabel(num_classes=4)})
    _local_tfds_builder()(name=f"tiny_{file_format}", config="default", version="1.0.0", data_dir=str(tmp_path),
                 split_datasets={"train": tf.data.Dataset.from_tensor_slices({"image": images,
                                                                              "label": np.arange(10) % 4})},
                 features=features, file_format=file_format).download_and_prepare()
    config = dict(source="tfds", name=f"tiny_{file_format}", data_dir=str(tmp_path), resolution=RES, use_labels=True)
    batches = list(iterate_images(config, 4))
    assert [len(b["image"]) for b in batches] == [4, 4, 2]
    for batch in batches:
        for image, label in zip(batch["image"], batch["label"]):
            index, coded_label, _ = _decode(image)
            assert coded_label == index % 4 and np.argmax(label) == index % 4
    with pytest.raises(DatasetConfigError, match="dataset.split: .* has no split 'test'"):
        open_dataset(dict(config, split="test"), seed=0, batch_size=2)


def test_utkface_faces_at_64_and_throughput():
    path = SHARED / "datasets" / "utkface"
    if not path.is_dir():
        pytest.skip(f"{path} is absent: UTKFace lives in ../shared/datasets")
    dataset = open_dataset(dict(source="folder", path=str(path), resolution=64, max_size=640), seed=0, batch_size=64)
    assert dataset.info.num_images == 640 and dataset.bad_files == []
    iterator = dataset.iterate()
    next(iterator)
    start = time.perf_counter()
    images = np.concatenate([next(iterator)["image"] for _ in range(8)])
    rate = len(images) / (time.perf_counter() - start)
    print(f"UTKFace 200x200 JPEG -> 64x64: {rate:.0f} images/s")
    assert images.shape == (512, 64, 64, 3)
    pixels = images.astype(np.float64)
    assert 80 < pixels.mean() < 170 and 40 < pixels.std() < 90  # photographs, not blank or noise
    red, _, blue = pixels.mean(axis=(0, 1, 2))
    assert red > blue + 10  # skin tones: more red than blue
    assert np.abs(images[:256].astype(int) - images[256:]).mean() > 20  # distinct faces, not one repeated
    mean_face = pixels.mean(axis=(0, 3))
    assert np.corrcoef(mean_face.ravel(), mean_face[:, ::-1].ravel())[0, 1] > 0.9  # aligned faces: symmetric mean
