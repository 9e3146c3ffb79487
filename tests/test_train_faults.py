"""Faults during training: stop signals with metrics configured, a second signal, a damaged newest checkpoint,
a full disk."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import xla_flags
from test_train_e2e import CONFIG, ROOT, _main, _ticked, _wait_for

from stylegan_jax import checkpoint

pytestmark = pytest.mark.slow


def _started(run):
    return lambda: _ticked(run)


def _killed_output(proc) -> str:
    """The end of the output of a run that did not start in time, killed rather than waited for."""
    proc.kill()
    return proc.communicate()[0][-3000:]


def test_sigterm_with_metrics_configured_saves_and_exits_without_running_them(tmp_path):
    run = tmp_path / "run"
    proc = _main(run, "--config.total_kimg=10", "--config.snapshot_kimg=5", "--config.metrics=fid50k_full", wait=False)
    assert _wait_for(_started(run), proc), _killed_output(proc)
    proc.send_signal(signal.SIGTERM)
    sent = time.time()
    out, _ = proc.communicate(timeout=300)
    # The snapshot's grid and checkpoint only: fid50k_full would take hours here. Measured 68 s with
    # three other compiling processes on the 2 cores (CI runs two test files at a time).
    assert time.time() - sent < 180, out[-3000:]
    assert proc.returncode == 0, out[-3000:]
    assert "Stop requested: skipped the metrics of step" in out and "SIGTERM: saved step" in out
    assert checkpoint.open_manager(str(run), read_only=True).latest_step() > 0
    assert not (run / "metrics.jsonl").exists()


def test_a_second_signal_exits_at_once(tmp_path):
    run = tmp_path / "run"
    proc = _main(run, "--config.total_kimg=10", "--config.snapshot_kimg=5", "--config.metrics=fid50k_full", wait=False)
    assert _wait_for(_started(run), proc), _killed_output(proc)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGINT)
    sent = time.time()
    out, _ = proc.communicate(timeout=300)
    assert time.time() - sent < 10, out[-3000:]
    # Python runs pending handlers in signal-number order, so either may count as the second.
    assert proc.returncode in (128 + signal.SIGINT, 128 + signal.SIGTERM), out[-3000:]
    assert "again: exiting now, without waiting for the save" in out


def test_a_damaged_newest_checkpoint_is_named_by_generate_and_skipped_by_main(tmp_path):
    run = tmp_path / "run"
    _main(run, "--config.total_kimg=0.032")  # checkpoints at steps 2 and 4
    # Truncate G_ema's array data files: which of them a step reads varies between runs, and Orbax
    # reports some as ValueErrors, others as bare Exceptions.
    for victim in (p for p in (run / "checkpoints" / "4" / "g_ema").rglob("*") if p.is_file() and p.parent.name == "d"):
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])

    generate = subprocess.run([sys.executable, "-m", "stylegan_jax.generate", f"--network={run}", "--seeds=0",
                               f"--outdir={tmp_path / 'out'}"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert generate.returncode == 2, generate.stderr[-3000:]
    assert generate.stderr.count("\n") == 1 and "checkpoint step 4 in" in generate.stderr
    assert "is damaged" in generate.stderr

    out = _main(run, "--config.total_kimg=0.048")
    assert "Warning: checkpoint step 4 is damaged" in out and "Resumed from step 2" in out
    assert (run / "checkpoints" / "4.damaged").is_dir()
    assert checkpoint.open_manager(str(run), read_only=True).latest_step() == 6


def _in_tmpfs(size: str, mount_point, command: list[str]) -> list[str] | None:
    """`command` in a private mount namespace with a tmpfs of `size` at mount_point; None where that is refused."""
    if shutil.which("unshare") is None:
        return None
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    probe = subprocess.run(["unshare", *user, "--mount", "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
                            str(mount_point)], capture_output=True)
    if probe.returncode:
        return None
    script = 'mount -t tmpfs -o "size=$1" tmpfs "$2" && shift 2 && exec "$@"'
    return ["unshare", *user, "--mount", "sh", "-c", script, "sh", size, str(mount_point), *command]


# TensorFlow's C++ start-up lines, printed on every run whatever TF_CPP_MIN_LOG_LEVEL says.
TF_START_UP = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)|I\d{4} )")


def test_a_full_disk_is_one_line_and_the_earlier_checkpoint_stays_intact(tmp_path):
    disk, kept = tmp_path / "disk", tmp_path / "kept"
    disk.mkdir()
    # 3 MB hold one or two checkpoints (1.1-1.35 MB each, measured) but not all three; the workdir is copied out
    # before the namespace, and with it the file system, goes away.
    main = [sys.executable, "-m", "stylegan_jax.main", f"--config={CONFIG}", f"--workdir={disk / 'run'}"]
    copy_out = 'run=$1 kept=$2 && shift 2 && "$@"; status=$?; cp -r "$run" "$kept"; exit $status'
    command = _in_tmpfs("3m", disk, ["sh", "-c", copy_out, "sh", str(disk / "run"), str(kept), *main])
    if command is None:
        pytest.skip("no private mount namespace for a small tmpfs (unshare missing or not permitted)")
    env = {**os.environ, "XLA_FLAGS": xla_flags(8), "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    errors = [line for line in out.stderr.splitlines() if not TF_START_UP.match(line)]
    assert out.returncode == 1, out.stderr[-3000:]
    assert len(errors) == 1 and errors[0].startswith("error: ") and "No space left on device" in errors[0], \
        "\n".join(errors)[-5000:]
    manager = checkpoint.open_manager(str(kept), read_only=True)
    assert manager.all_steps() in ([2], [2, 4])  # the disk filled while saving step 4 or step 6
    G, variables = checkpoint.load_generator(str(kept))
    assert G.img_resolution == 16 and variables["params"]["mapping"]["fc0"]["weight"].shape == (16, 16)
