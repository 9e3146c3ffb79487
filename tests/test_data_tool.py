"""dataset_tool: folders and zips to TFRecord shards that read back exactly like the folder."""
import json
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest

from stylegan_jax import dataset_tool
from stylegan_jax.data import DatasetConfigError, iterate_images, open_dataset


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """9 labelled images of assorted sizes (PNG and JPEG) in class sub-folders, plus one unreadable file."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(9):
        path = root / ["cat", "dog", "emu"][i % 3] / f"{i}.{'png' if i % 2 else 'jpg'}"
        path.parent.mkdir(exist_ok=True)
        PIL.Image.fromarray(rng.integers(0, 256, (20 + i, 30 - i, 3), dtype=np.uint8)).save(path)
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG broken")
    return root


def _all(config):
    batches = list(iterate_images(config, 4))
    return np.concatenate([b["image"] for b in batches]), np.concatenate([b["label"] for b in batches])


def test_round_trip_reads_exactly_like_the_folder(folder, tmp_path, capsys):
    dest = tmp_path / "shards"
    assert dataset_tool.main([f"--source={folder}", f"--dest={dest}", "--resolution=16", "--shards=3",
                              "--use-labels"]) == 0
    out, err = capsys.readouterr()
    assert "wrote 9 images (16x16, 3 channel(s), 3 classes)" in out and "skipped 1 unreadable file(s)" in err
    meta = json.loads((dest / "metadata.json").read_text())
    assert meta["num_images"] == 9 and meta["resolution"] == 16 and meta["channels"] == 3 and meta["c_dim"] == 3
    assert meta["labels"] == [0, 0, 0, 1, 1, 1, 2, 2, 2] and meta["bad_files"] == [str(folder / "cat" / "broken.png")]
    assert sorted(p.name for p in dest.glob("*.tfrecord")) == [f"data-0000{i}-of-00003.tfrecord" for i in range(3)]

    folder_config = dict(source="folder", path=str(folder), resolution=16, use_labels=True)
    shard_config = dict(source="tfrecord", path=str(dest), resolution=16, use_labels=True)
    for got, want in zip(_all(shard_config), _all(folder_config)):
        np.testing.assert_array_equal(got, want)
    from_shards, from_folder = (open_dataset(c, seed=4, batch_size=4).iterate() for c in (shard_config, folder_config))
    for _ in range(3):
        got, want = next(from_shards), next(from_folder)
        np.testing.assert_array_equal(got["image"], want["image"])
        np.testing.assert_array_equal(got["label"], want["label"])


def test_grayscale_without_labels(folder, tmp_path):
    dest = tmp_path / "gray"
    meta = dataset_tool.convert(str(folder), str(dest), resolution=8, channels=1, convert_channels=True)
    assert meta["labels"] is None and meta["c_dim"] == 0 and len(meta["shards"]) == 1
    images, labels = _all(dict(source="tfrecord", path=str(dest), resolution=8, channels=1))
    assert images.shape == (9, 8, 8, 1) and labels.shape == (9, 0)
    with pytest.raises(DatasetConfigError, match="dataset.use_labels: .* was written without labels"):
        open_dataset(dict(source="tfrecord", path=str(dest), resolution=8, channels=1, use_labels=True),
                     seed=0, batch_size=2)
    with pytest.raises(DatasetConfigError, match=r"dataset.channels: 9 of 9 images have 1 channel\(s\), not 3"):
        open_dataset(dict(source="tfrecord", path=str(dest), resolution=8), seed=0, batch_size=2)


def test_truncated_shard_is_a_clear_error(folder, tmp_path):
    dest = tmp_path / "cut"
    dataset_tool.convert(str(folder), str(dest), resolution=8)
    shard = next(dest.glob("*.tfrecord"))
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(DatasetConfigError, match="dataset.path: .* not a complete TFRecord file"):
        open_dataset(dict(source="tfrecord", path=str(dest), resolution=8), seed=0, batch_size=2)


@pytest.mark.parametrize("flags, message", [
    (["--resolution=48"], "error: --resolution: must have sides that are powers of two >= 4 (one side or HxW), got '48'"),
    (["--resolution=16x48"], "error: --resolution: must have sides that are powers of two >= 4 (one side or HxW), "
                             "got '16x48'"),
    (["--resolution=16", "--fit=pad"], "error: --fit: must be one of crop, letterbox, got 'pad'"),
    (["--resolution=16", "--channels=2"], "error: --channels: must be 1 or 3, got 2"),
    (["--resolution=16", "--shards=-1"], "error: --shards must be >= 0, got -1"),
])
def test_bad_flags_are_one_line_errors(folder, tmp_path, capsys, flags, message):
    assert dataset_tool.main([f"--source={folder}", f"--dest={tmp_path / 'out'}", *flags]) == 2
    assert capsys.readouterr().err.strip() == message


def test_bad_sources_and_destinations(folder, tmp_path, capsys):
    assert dataset_tool.main([f"--source={tmp_path / 'missing'}", f"--dest={tmp_path}", "--resolution=8"]) == 2
    assert capsys.readouterr().err.strip() == f"error: --source: {tmp_path / 'missing'} does not exist"
    (tmp_path / "notes.txt").write_text("not a zip")
    assert dataset_tool.main([f"--source={tmp_path / 'notes.txt'}", f"--dest={tmp_path}", "--resolution=8"]) == 2
    assert "is not a readable zip archive" in capsys.readouterr().err
    flat = tmp_path / "flat"
    flat.mkdir()
    PIL.Image.new("RGB", (8, 8)).save(flat / "a.png")
    assert dataset_tool.main([f"--source={flat}", f"--dest={tmp_path / 'o'}", "--resolution=8", "--use-labels"]) == 2
    assert "error: --use-labels: " in capsys.readouterr().err
    dataset_tool.convert(str(flat), str(tmp_path / "done"), resolution=8)
    assert dataset_tool.main([f"--source={flat}", f"--dest={tmp_path / 'done'}", "--resolution=8"]) == 2
    assert "already holds a dataset" in capsys.readouterr().err


def test_a_channel_mismatch_names_the_convert_channels_flag(folder, tmp_path, capsys):
    argv = [f"--source={folder}", f"--dest={tmp_path / 'gray'}", "--resolution=8", "--channels=1"]
    assert dataset_tool.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --channels: 9 of 9 images have 3 channel(s), not 1 (e.g. ")
    assert err.endswith("; pass --convert-channels to convert them\n") and "dataset." not in err
    assert dataset_tool.main(argv + ["--convert-channels"]) == 0


def test_runs_as_a_module(tmp_path):
    result = subprocess.run([sys.executable, "-m", "stylegan_jax.dataset_tool", f"--source={tmp_path}",
                             f"--dest={tmp_path / 'o'}", "--resolution=100"], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("error: --resolution: ")


def test_non_square_shards_read_back_like_the_folder(folder, tmp_path, capsys):
    dest = tmp_path / "wide"
    assert dataset_tool.main([f"--source={folder}", f"--dest={dest}", "--resolution=16x32", "--fit=letterbox"]) == 0
    assert "wrote 9 images (16x32, 3 channel(s), 0 classes)" in capsys.readouterr().out
    assert json.loads((dest / "metadata.json").read_text())["resolution"] == [16, 32]
    shards, _ = _all(dict(source="tfrecord", path=str(dest), resolution="16x32", fit="letterbox"))
    files, _ = _all(dict(source="folder", path=str(folder), resolution=(16, 32), fit="letterbox"))
    assert shards.shape == (9, 16, 32, 3)
    np.testing.assert_array_equal(shards, files)
    with pytest.raises(DatasetConfigError, match=r"dataset.resolution: .* holds 16x32 images, smaller than 32x64"):
        open_dataset(dict(source="tfrecord", path=str(dest), resolution="32x64", fit="letterbox"), seed=0, batch_size=2)
