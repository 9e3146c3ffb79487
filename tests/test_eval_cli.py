"""`python -m stylegan_jax.evaluate fid` on folders of generated PNGs, and its one-line errors."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest

from stylegan_jax import evaluate
from stylegan_jax.eval import fid_features, mean_cov


def _write_pngs(folder: pathlib.Path, images: np.ndarray) -> None:
    for i, image in enumerate(images):
        sub = folder / f"part{i % 2}"   # nested folders: the search is recursive
        sub.mkdir(parents=True, exist_ok=True)
        PIL.Image.fromarray(image).save(sub / f"{i:03d}.png")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("cli")
    gradient = np.linspace(0, 255, 64, dtype=np.float32)[None, :, None, None] * np.ones((5, 64, 64, 3))
    real = (gradient + rng.normal(0, 20, gradient.shape)).clip(0, 255).astype(np.uint8)
    fake = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    _write_pngs(root / "real", real)
    _write_pngs(root / "fake", fake)
    return root, real, fake


def test_cli_fid_end_to_end(folders, capsys):
    root, real, fake = folders
    out = root / "metrics.jsonl"
    argv = ["fid", f"--real={root / 'real'}", f"--fake={root / 'fake'}", f"--out={out}", "--batch=8"]
    assert evaluate.main(argv) == 0
    record = json.loads(out.read_text().splitlines()[-1])
    assert record["metric"] == "fid" and record["num_real"] == 5 and record["num_fake"] == 5
    assert f"fid {record['results']['fid']:.4f}" in capsys.readouterr().out
    # FID = |mu_f - mu_r|^2 + a squared Bures distance between 0 and Tr(sigma_f) + Tr(sigma_r).
    # (Bounds instead of a second 2048x2048 sqrtm, which takes half a minute on a small CPU.)
    (mu_f, sigma_f), (mu_r, sigma_r) = mean_cov(fid_features(fake)), mean_cov(fid_features(real))
    mean_term = np.square(mu_f - mu_r).sum()
    assert mean_term * (1 - 1e-4) <= record["results"]["fid"] <= mean_term + np.trace(sigma_f) + np.trace(sigma_r)


def test_cli_errors_are_one_line_with_exit_code_2(folders, tmp_path, capsys):
    root, _, _ = folders
    (tmp_path / "empty").mkdir()
    cases = [
        (["fid", f"--real={tmp_path / 'missing'}", f"--fake={root / 'fake'}"], "does not exist"),
        (["fid", f"--real={tmp_path / 'empty'}", f"--fake={root / 'fake'}"], "no PNG/JPEG images"),
        (["fid", f"--real={root / 'real'}", f"--fake={root / 'fake'}", f"--inception={tmp_path / 'w.npz'}"],
         "weights file"),
    ]
    for argv, message in cases:
        assert evaluate.main(argv + [f"--out={tmp_path / 'm.jsonl'}"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "m.jsonl").exists()


def test_cli_as_a_module_prints_no_traceback(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-m", "stylegan_jax.evaluate", "fid", f"--real={tmp_path / 'no'}",
                             f"--fake={tmp_path / 'no'}"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "does not exist" in result.stderr


def test_each_metric_is_written_before_the_next_starts(tmp_path, monkeypatch):
    import stylegan_jax.eval as sg_eval
    from stylegan_jax.eval import inputs
    from stylegan_jax.sampling import loading

    class G:
        img_resolution, img_channels, c_dim = 16, 3, 0

    out = tmp_path / "metrics.jsonl"
    seen = []

    def run_metrics(names, options):
        seen.append((names, out.read_text().splitlines() if out.exists() else []))
        return [dict(metric=names[0], results={names[0]: len(seen)}, total_time=0.5)]

    monkeypatch.setattr(loading, "load_generator", lambda path, step: (G(), {}))
    monkeypatch.setattr(inputs, "dataset_source", lambda cfg, batch: None)
    monkeypatch.setattr(inputs, "generator_source", lambda G, variables, batch, prompts=None: None)
    monkeypatch.setattr(sg_eval, "run_metrics", run_metrics)
    argv = ["--metrics=fid1k_full,kid1k_full", "--network=G.pkl", f"--data={tmp_path}", f"--out={out}"]
    assert evaluate.main(argv) == 0
    assert seen[0] == (["fid1k_full"], [])
    assert seen[1][0] == ["kid1k_full"] and [json.loads(line)["metric"] for line in seen[1][1]] == ["fid1k_full"]
    assert [json.loads(line)["results"] for line in out.read_text().splitlines()] == [
        {"fid1k_full": 1}, {"kid1k_full": 2}]


def test_progress_lines_are_printed_and_ctrl_c_keeps_the_finished_metrics(tmp_path, monkeypatch, capsys):
    import stylegan_jax.eval as sg_eval
    from stylegan_jax.eval import inputs
    from stylegan_jax.sampling import loading

    class G:
        img_resolution, img_channels, c_dim = 16, 3, 0

    def run_metrics(names, options):
        options.progress("generated images", 0, 1000)
        options.progress("generated images", 1000, 1000)
        if names == ["kid1k_full"]:
            raise KeyboardInterrupt
        return [dict(metric=names[0], results={names[0]: 12.5}, total_time=0.5)]

    monkeypatch.setattr(loading, "load_generator", lambda path, step: (G(), {}))
    monkeypatch.setattr(inputs, "dataset_source", lambda cfg, batch: None)
    monkeypatch.setattr(inputs, "generator_source", lambda G, variables, batch, prompts=None: None)
    monkeypatch.setattr(sg_eval, "run_metrics", run_metrics)
    out = tmp_path / "metrics.jsonl"
    argv = ["--metrics=fid1k_full,kid1k_full,is1k", "--network=G.pkl", f"--data={tmp_path}", f"--out={out}"]
    assert evaluate.main(argv) == 130
    printed = capsys.readouterr()
    first, last = printed.out.splitlines()[:2]
    assert first == "fid1k_full generated images: 0/1000 images"
    assert last.startswith("fid1k_full generated images: 1000/1000 images, ") and last.endswith(" img/s")
    assert "kid1k_full generated images: 0/1000 images" in printed.out
    assert printed.err == f"interrupted during kid1k_full; fid1k_full finished, in {out}\n"
    assert [json.loads(line)["results"] for line in out.read_text().splitlines()] == [{"fid1k_full": 12.5}]
