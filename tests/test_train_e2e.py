"""End to end: `python -m stylegan_jax.main`, resume (also on another device count), kill -9, SIGTERM."""
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import tiny_config
from conftest import xla_flags
from stylegan_jax import checkpoint
from stylegan_jax.convert.state_dict import build_network
from stylegan_jax.training.config import network_specs
from stylegan_jax.training.loop import TrainingDiverged, make_trainer, train_and_evaluate

pytestmark = pytest.mark.slow
CONFIG = str(pathlib.Path(tiny_config.__file__))
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _main(workdir, *overrides, devices=8, wait=True):
    env = {**os.environ, "XLA_FLAGS": xla_flags(devices), "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, "-m", "stylegan_jax.main", f"--config={CONFIG}", f"--workdir={workdir}", *overrides]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not wait:
        return proc
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    return out


def _restore(workdir, freeze_d=0):
    """Restores the latest checkpoint of `workdir` into this process (8 devices)."""
    config = tiny_config.get_config()
    config.freeze_d = freeze_d
    (g_class, g_kwargs), (d_class, d_kwargs) = network_specs(config, 0, 3)
    trainer = make_trainer(config, build_network(g_class, g_kwargs), build_network(d_class, d_kwargs))
    manager = checkpoint.open_manager(workdir, read_only=True)
    return checkpoint.restore(manager, trainer.init_state(config.seed), trainer.replicated)


def _assert_states_close(a, b, atol):
    for field in ("g", "d", "g_ema", "g_opt", "d_opt", "pl_mean", "step", "nimg", "augment_p", "ada_sign_sum",
                  "ada_sign_count"):
        for x, y in zip(jax.tree_util.tree_leaves(getattr(a, field)), jax.tree_util.tree_leaves(getattr(b, field))):
            # rtol 1e-6: a few float32 ulps of the large mapping weights (values about 200)
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=1e-6, err_msg=field)


def test_main_writes_outputs_and_resumes_like_a_straight_run(tmp_path, tiny_straight_run):
    straight = tiny_straight_run

    run = tmp_path / "run"
    out = _main(run, "--config.total_kimg=0.024")  # 3 of the 6 iterations, then stop
    assert "kimg" in out
    assert (run / "checkpoints").is_dir() and (run / "reals.png").is_file() and (run / "log.txt").is_file()
    assert list(run.glob("fakes_kimg*.png"))
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert checkpoint.open_manager(str(run), read_only=True).latest_step() == 3

    out = _main(run, devices=4)  # a fresh process on 4 devices finishes the remaining 3 iterations
    assert "Resumed from step 3" in out
    resumed, meta = _restore(str(run))
    assert meta["step"] == 6 and int(resumed.step) == 6
    assert float(straight.augment_p) > 0  # ADA moved p, and the resumed run continued from the saved p
    _assert_states_close(resumed, straight, atol=1e-6)

    # The EMA generator of the run can be loaded for sampling.
    G, variables = checkpoint.load_generator(str(run))
    np.testing.assert_array_equal(variables["params"]["mapping"]["fc0"]["weight"],
                                  np.asarray(straight.g_ema["params"]["mapping"]["fc0"]["weight"]))
    assert G.img_resolution == 16


def _ticked(run) -> bool:
    """Whether the run's log.txt has a progress line (training is under way; the config above also says kimg)."""
    log = run / "log.txt"
    return log.is_file() and any(line.startswith("kimg ") for line in log.read_text().splitlines())


def _wait_for(predicate, proc, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def test_kill_9_during_training_then_resume_completes(tmp_path):
    run = tmp_path / "run"
    ckpts = run / "checkpoints"
    proc = _main(run, "--config.snapshot_kimg=0.008", "--config.total_kimg=0.08", wait=False)
    # Kill as soon as a second save is under way (Orbax writes into a temporary folder first).
    saving = lambda: ckpts.is_dir() and len([p for p in ckpts.iterdir() if p.name.split(".")[0].isdigit()]) >= 2
    assert _wait_for(saving, proc), proc.communicate()[0][-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at, _ = _restore(str(run))  # the newest complete checkpoint, with ADA's p and sign statistics
    out = _main(run, "--config.snapshot_kimg=0.008", "--config.total_kimg=0.08")
    step, kimg = int(killed_at.step), int(killed_at.nimg) / 1e3
    assert f"Resumed from step {step} ({kimg:.3f} kimg, augment p {float(killed_at.augment_p):.4f})" in out
    assert checkpoint.open_manager(str(run), read_only=True).latest_step() == 10


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    run = tmp_path / "run"
    proc = _main(run, "--config.total_kimg=10", "--config.snapshot_kimg=5", wait=False)
    assert _wait_for(lambda: _ticked(run), proc), proc.communicate()[0][-3000:]
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert "SIGTERM: saved step" in out
    step = checkpoint.open_manager(str(run), read_only=True).latest_step()
    assert step is not None and step > 0


def test_consecutive_non_finite_iterations_stop_training_with_the_last_checkpoint_intact(tmp_path):
    config = tiny_config.get_config()
    config.loss.r1_gamma = float("inf")  # every R1 phase has an infinite loss ...
    config.loss.d_reg_interval = 1       # ... and runs at every iteration
    config.max_nonfinite_steps = 3
    with pytest.raises(TrainingDiverged, match="4 consecutive iterations had NaN/Inf"):
        train_and_evaluate(config, str(tmp_path / "run"))
    restored, meta = _restore(str(tmp_path / "run"))
    assert meta["step"] == 2 and int(restored.skipped) == 2
    assert all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(restored.d["params"]))


def test_main_reports_a_bad_config_in_one_line(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-m", "stylegan_jax.main", f"--config={CONFIG}", f"--workdir={tmp_path}",
                          "--config.batch_size=12"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        "error: config.batch_size must be a positive multiple of the 8 devices, got 12")
    assert "Traceback" not in out.stderr


def test_resume_weights_of_another_shape_are_refused_with_the_variable_named(tiny_straight_run, monkeypatch):
    from stylegan_jax.training import loop

    state = tiny_straight_run
    paths_and_leaves = jax.tree_util.tree_flatten_with_path(state.g)[0]
    wrong_name = jax.tree_util.keystr(paths_and_leaves[0][0])
    wrong_g = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(state.g),
                                           [np.zeros((*np.shape(paths_and_leaves[0][1]), 2), np.float32)]
                                           + [np.asarray(leaf) for _, leaf in paths_and_leaves[1:]])
    runs = {"/runs/other": {"G": wrong_g, "D": state.d, "G_ema": state.g_ema},
            "/runs/same": {"G": state.g, "D": state.d, "G_ema": state.g_ema}}
    monkeypatch.setattr(checkpoint, "load_network", lambda source, which: (None, runs[source][which]))
    with pytest.raises(ValueError, match=r"config\.resume: G of /runs/other does not fit .*1 variable") as error:
        loop._resume_weights(state, "/runs/other")
    assert wrong_name in str(error.value)
    resumed, reinitialised = loop._resume_weights(state, "/runs/same")
    assert reinitialised == []
    for new, old in zip(jax.tree_util.tree_leaves(resumed.g), jax.tree_util.tree_leaves(state.g)):
        np.testing.assert_array_equal(np.asarray(new), np.asarray(old))
    # A non-square network takes what fits and names what it re-initialises; names must still match.
    resumed, reinitialised = loop._resume_weights(state, "/runs/other", reshape_ok=True)
    assert reinitialised == [f"G {wrong_name} {np.shape(paths_and_leaves[0][1]) + (2,)} -> "
                             f"{np.shape(paths_and_leaves[0][1])}"]
    np.testing.assert_array_equal(np.asarray(jax.tree_util.tree_leaves(resumed.g)[0]), np.asarray(paths_and_leaves[0][1]))


def test_transfer_learning_from_an_official_pickle_with_ada_and_frozen_d_layers(tmp_path):
    """--config.resume=official .pkl + ADA + freeze_d on a small image folder, end to end."""
    import official_pickle_writer as writer
    from PIL import Image

    from stylegan_jax.convert.state_dict import to_official_state_dict

    config = tiny_config.get_config()
    (g_class, g_kwargs), (d_class, d_kwargs) = network_specs(config, 0, 3)
    trainer = make_trainer(config, build_network(g_class, g_kwargs), build_network(d_class, d_kwargs))
    source = trainer.init_state(123)
    record = lambda cls, kwargs, module, v: writer.network_record(cls, kwargs, to_official_state_dict(module, v))
    nets = {"G": record(g_class, g_kwargs, trainer.G, source.g), "D": record(d_class, d_kwargs, trainer.D, source.d),
            "G_ema": record(g_class, g_kwargs, trainer.G, source.g_ema)}
    pkl = tmp_path / "network-snapshot-000100.pkl"
    with open(pkl, "wb") as f:
        writer.dump({**nets, "augment_pipe": None, "training_set_kwargs": None}, f)
    folder = tmp_path / "faces"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")

    run = tmp_path / "run"
    out = _main(run, f"--config.resume={pkl}", "--config.dataset.source=folder", f"--config.dataset.path={folder}",
                "--config.freeze_d=2", "--config.augment.pipe=bgc", "--config.augment.p=0.2",
                "--config.total_kimg=0.032")
    assert f"Initialised G, D and G_ema from {pkl}" in out
    state, _ = _restore(str(run), freeze_d=2)
    # ADA started at p 0.2 and moved it by +-0.32 (never below 0) after iterations 2 and 4.
    assert int(state.step) == 4 and float(state.ada_sign_count) == 0
    assert min(abs(float(state.augment_p) - p) for p in (0.0, 0.2, 0.52, 0.84)) < 1e-6
    # The two frozen layers (b16.fromrgb, b16.conv0) kept the pickle's weights; the next one trained.
    for layer in ("fromrgb", "conv0"):
        np.testing.assert_array_equal(state.d["params"]["b16"][layer]["weight"],
                                      np.asarray(source.d["params"]["b16"][layer]["weight"]))
    assert not np.array_equal(state.d["params"]["b16"]["conv1"]["weight"],
                              np.asarray(source.d["params"]["b16"]["conv1"]["weight"]))
