"""Remote paths (gs:// and the like) go through TensorFlow's file systems: checked on its in-memory ram://."""
import io
import json
import zipfile

import numpy as np
import PIL.Image
import pytest

from stylegan_jax import fileio
from stylegan_jax.data import open_dataset
from stylegan_jax.data._tf import tensorflow
from stylegan_jax.images import save_image
from stylegan_jax.training.monitor import Monitor


@pytest.fixture
def ram_root(request):
    root = f"ram://stylegan_jax_tests/{request.node.name}"
    yield root
    gfile = tensorflow().io.gfile
    if gfile.exists(root):
        gfile.rmtree(root)


def _png_bytes(value: int, size: int = 8) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_helpers_on_local_and_remote_paths(tmp_path, ram_root):
    for root in (str(tmp_path), ram_root):
        fileio.makedirs(fileio.join(root, "a", "b"))
        with fileio.open_file(fileio.join(root, "a", "b", "x.txt"), "w") as f:
            f.write("hello")
        with fileio.open_file(fileio.join(root, "a", "y.bin"), "wb") as f:
            f.write(b"\0" * 5)
        assert fileio.isdir(fileio.join(root, "a")) and not fileio.isdir(fileio.join(root, "a", "y.bin"))
        assert fileio.exists(fileio.join(root, "a", "b", "x.txt")) and not fileio.exists(fileio.join(root, "zz"))
        assert fileio.getsize(fileio.join(root, "a", "y.bin")) == 5
        assert sorted(fileio.walk_files(fileio.join(root, "a"))) == ["b/x.txt", "y.bin"]
    assert fileio.join("gs://bucket/run", "log.txt") == "gs://bucket/run/log.txt"
    assert fileio.absolute("gs://bucket/run") == "gs://bucket/run" and fileio.is_remote("gs://b")
    assert not fileio.is_remote(str(tmp_path))


def test_training_outputs_can_be_written_to_a_remote_workdir(ram_root):
    fileio.makedirs(ram_root)
    monitor = Monitor(ram_root)
    monitor.log("hello")
    monitor.tick(8, {"loss/G": np.float32(1.5)}, skipped=0)
    monitor.write_metrics({"fid": 12.5}, 8)
    monitor.close()
    save_image(np.zeros((4, 6, 3), np.uint8), fileio.join(ram_root, "grid.png"))
    with fileio.open_file(fileio.join(ram_root, "log.txt")) as f:
        assert f.read().startswith("hello\nkimg 0.0")
    with fileio.open_file(fileio.join(ram_root, "metrics.jsonl")) as f:
        assert json.loads(f.read()) == {"kimg": 0.008, "fid": 12.5}
    with fileio.open_file(fileio.join(ram_root, "grid.png"), "rb") as f:
        assert PIL.Image.open(f).size == (6, 4)
    assert list(fileio.walk_files(fileio.join(ram_root, "tensorboard")))


@pytest.mark.parametrize("source", ["folder", "zip"])
def test_datasets_are_read_from_remote_folders_and_zips(ram_root, source):
    names = {"cls_a/0.png": 10, "cls_a/1.png": 20, "cls_b/2.png": 30}
    if source == "folder":
        path = fileio.join(ram_root, "images")
        for name, value in names.items():
            fileio.makedirs(fileio.join(path, name.split("/")[0]))
            with fileio.open_file(fileio.join(path, name), "wb") as f:
                f.write(_png_bytes(value))
    else:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, value in names.items():
                archive.writestr(name, _png_bytes(value))
        fileio.makedirs(ram_root)
        path = fileio.join(ram_root, "images.zip")
        with fileio.open_file(path, "wb") as f:
            f.write(buffer.getvalue())
    dataset = open_dataset(dict(source=source, path=path, resolution=8, use_labels=True), seed=0, batch_size=3)
    assert dataset.info.num_images == 3 and dataset.info.c_dim == 2
    batch = next(dataset.iterate())
    assert sorted(batch["image"][:, 0, 0, 0].tolist()) == [10, 20, 30]
    assert sorted(batch["label"].argmax(1).tolist()) == [0, 0, 1]


def test_dataset_tool_writes_tfrecords_to_a_remote_folder_that_trains(tmp_path, ram_root):
    from stylegan_jax.dataset_tool import convert

    for i, value in enumerate((40, 80)):
        PIL.Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(tmp_path / f"{i}.png")
    dest = fileio.join(ram_root, "records")
    meta = convert(str(tmp_path), dest, resolution=8)
    assert meta["num_images"] == 2
    dataset = open_dataset(dict(source="tfrecord", path=dest, resolution=8), seed=0, batch_size=2)
    assert sorted(next(dataset.iterate())["image"][:, 0, 0, 0].tolist()) == [40, 80]
