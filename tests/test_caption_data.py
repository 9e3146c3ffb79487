"""Captioned image folders and zips (stylegan_jax.data.captions) and the UTKFace caption tool, on tiny fakes."""
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import PIL.Image
import pytest

from stylegan_jax.data import DatasetConfigError, iterate_images, open_dataset
from stylegan_jax.data.utkface_captions import caption, parse_name, write_captioned_folder

RES = 8
TEXTS = ["a red square", "Two  dogs\nplaying", "a photo of a 34 year old asian woman"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tokenizer():
    pytest.importorskip("regex")
    from stylegan_jax.perceptual import clip_tokenizer
    try:
        return clip_tokenizer.CLIPTokenizer()
    except (OSError, ImportError, ValueError) as e:
        pytest.skip(f"no CLIP vocabulary: {e}")


def _image(index: int) -> np.ndarray:
    return np.full((RES, RES, 3), 40 * (index + 1), np.uint8)


def _folder(root, form: str):
    """Image i (in b/ for i = 1) with caption TEXTS[i], as .txt files or captions.jsonl."""
    names = ["a.png", "b/b.png", "c.png"]  # sorted: the dataset order
    lines = []
    for i, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        PIL.Image.fromarray(_image(i)).save(root / name)
        if form == "txt":
            (root / name).with_suffix(".txt").write_text(TEXTS[i])
        else:
            lines.append(json.dumps({"file": name, "text": TEXTS[i]}))
    if form == "jsonl":
        (root / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _config(path, source="folder", **overrides):
    return dict(source=source, path=str(path), resolution=RES, captions=True, num_threads=1, **overrides)


def _zip(folder, path):
    with zipfile.ZipFile(path, "w") as z:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                z.write(file, file.relative_to(folder).as_posix())
    return path


@pytest.mark.parametrize("form", ["txt", "jsonl", "zip"])
def test_captioned_images_come_with_their_token_ids(tmp_path, tokenizer, form):
    folder = _folder(tmp_path / "data", "jsonl" if form == "jsonl" else "txt")
    cfg = _config(_zip(folder, tmp_path / "data.zip"), "zip") if form == "zip" else _config(folder)
    expected = tokenizer.tokenize(TEXTS)
    batch = next(iterate_images(cfg, 8, tokenize=tokenizer.tokenize))
    assert batch["label"].dtype == np.float32 and batch["label"].shape == (3, 77)
    np.testing.assert_array_equal(batch["image"], np.stack([_image(i) for i in range(3)]))
    np.testing.assert_array_equal(batch["label"].astype(np.int32), expected)

    dataset = open_dataset(cfg, seed=0, batch_size=2, tokenize=tokenizer.tokenize)
    assert dataset.info.c_dim == 77
    assert dataset.caption_texts([2, 1]) == [TEXTS[2], "Two dogs playing"]
    train = next(dataset.iterate())
    for image, label in zip(train["image"], train["label"].astype(np.int32)):
        index = round(image.mean() / 40) - 1
        np.testing.assert_array_equal(label, expected[index])
    sampled = dataset.sample_labels(4, np.random.default_rng(0)).astype(np.int32)
    assert all(any((row == e).all() for e in expected) for row in sampled)


def _error(cfg, tokenize) -> str:
    with pytest.raises(DatasetConfigError) as info:
        iterate_images(cfg, 4, tokenize=tokenize)
    message = str(info.value)
    assert "\n" not in message and message.startswith("dataset.captions: ")
    return message


def test_caption_errors_are_one_line_and_name_the_file(tmp_path, tokenizer):
    tok = tokenizer.tokenize
    folder = _folder(tmp_path / "txt", "txt")
    (folder / "b" / "b.txt").unlink()
    assert str(folder / "b" / "b.png") in _error(_config(folder), tok)
    (folder / "b" / "b.txt").write_text("  \n")
    assert f"{folder / 'b' / 'b.txt'} is empty" in _error(_config(folder), tok)

    folder = _folder(tmp_path / "jsonl", "jsonl")
    with open(folder / "captions.jsonl", "a") as f:
        f.write(json.dumps({"file": "gone.png", "text": "x"}) + "\n")
    assert "line 4 names 'gone.png'" in _error(_config(folder), tok)
    (folder / "captions.jsonl").write_text(json.dumps({"file": "a.png", "text": "x"}) + "\n")
    assert str(folder / "b" / "b.png") in _error(_config(folder), tok)
    (folder / "captions.jsonl").write_text('{"file": "a.png"}\n')
    assert "captions.jsonl line 1" in _error(_config(folder), tok)
    (folder / "captions.jsonl").write_text(json.dumps({"file": "a.png", "text": ""}) + "\n")
    assert "caption of 'a.png' is empty" in _error(_config(folder), tok)

    good = _folder(tmp_path / "good", "txt")
    assert "need a tokenizer" in _error(_config(good), None)
    assert "turn use_labels off" in _error(_config(good, use_labels=True), tok)
    assert "only folders and zips" in _error(dict(source="digits", captions=True), tok)


def _fake_utkface(root):
    root.mkdir()
    names = ["34_1_2_20170116174525125.jpg.chip.jpg", "1_0_4_20161221193006454.jpg.chip.jpg",
             "80_0_3_20170111222000000.jpg", "39_1_20170116174525125.jpg.chip.jpg", "notes.txt"]
    for i, name in enumerate(names):
        PIL.Image.fromarray(_image(i)).save(root / name, format="JPEG")
    return names


def test_utkface_names_and_captions():
    assert parse_name("34_1_2_20170116174525125.jpg.chip.jpg") == (34, 1, 2, "34_1_2_20170116174525125")
    assert parse_name("39_1_20170116174525125.jpg.chip.jpg") is None
    assert caption(34, 1, 2) == "a photo of a 34 year old asian woman"
    assert caption(80, 0, 3) == "a photo of an 80 year old indian man"
    assert caption(1, 0, 4) == "a photo of a 1 year old baby boy"


def test_utkface_caption_tool_writes_a_readable_captioned_folder(tmp_path, tokenizer):
    _fake_utkface(tmp_path / "utk")
    assert write_captioned_folder(str(tmp_path / "utk"), str(tmp_path / "out"), copy=True) == (3, 2)
    assert (tmp_path / "out" / "34_1_2_20170116174525125.txt").read_text().strip() == caption(34, 1, 2)
    dataset = open_dataset(_config(tmp_path / "out"), seed=0, batch_size=1, tokenize=tokenizer.tokenize)
    assert dataset.info.num_images == 3
    assert dataset.caption_texts([0, 1, 2]) == [caption(1, 0, 4), caption(34, 1, 2), caption(80, 0, 3)]

    result = subprocess.run([sys.executable, "-m", "stylegan_jax.data.utkface_captions", str(tmp_path / "utk"),
                             str(tmp_path / "linked"), "--limit", "2"], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr
    assert "wrote 2 captioned image(s)" in result.stdout
    linked = sorted(p.name for p in (tmp_path / "linked").iterdir())
    assert linked == ["1_0_4_20161221193006454.jpg", "1_0_4_20161221193006454.txt",
                      "34_1_2_20170116174525125.jpg", "34_1_2_20170116174525125.txt"]
    assert os.path.islink(tmp_path / "linked" / "1_0_4_20161221193006454.jpg")


def test_captions_need_the_text_conditional_generator(tmp_path):
    """Only StyleGAN-T takes captions: another arch on a captioned folder fails at start-up, naming the key."""
    from stylegan_jax.training.config import default_config, validate_config

    _fake_utkface(tmp_path / "utk")
    config = default_config()
    config.dataset.update(_config(tmp_path / "utk"))
    with pytest.raises(ValueError, match="config.dataset.captions needs model.arch 'stylegan_t'") as info:
        validate_config(config, 8)
    assert "\n" not in str(info.value)
