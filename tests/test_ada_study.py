"""benchmarks/ada_study.py: the overfitting diagnostic's arithmetic and how it reads image folders."""
import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
import ada_study  # noqa: E402


def test_logit_gap_scores_every_image_in_batches():
    train = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)      # scores 0..9 -> mean 4.5
    heldout = -np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)   # scores 0..-9 -> mean -4.5
    seen = []

    def d_logits(images):
        seen.append(len(images))
        return images.reshape(len(images), 1) - 0.5

    r = ada_study.logit_gap(d_logits, train, heldout, batch=4)
    assert seen == [4, 4, 2, 4, 4, 2]
    assert r["train"] == pytest.approx(4.0) and r["heldout"] == pytest.approx(-5.0)
    assert r["gap"] == pytest.approx(9.0)
    assert r["sign_train"] == pytest.approx(0.8) and r["sign_heldout"] == pytest.approx(-1.0)


def test_load_images_scales_the_first_files_to_minus_one_one(tmp_path):
    from PIL import Image

    for i, value in enumerate((0, 255, 51)):
        Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(tmp_path / f"{i:02d}.png")
    images = ada_study._load_images(str(tmp_path), 2)
    assert images.shape == (2, 4, 4, 3) and images.dtype == np.float32
    np.testing.assert_allclose(images[:, 0, 0, 0], [-1.0, 1.0])
