"""Faults during training: stop signals with metrics configured, a second signal, a damaged newest checkpoint."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from test_train_e2e import ROOT, _main, _wait_for

from stylegan_jax import checkpoint

pytestmark = pytest.mark.slow


def _started(run):
    return lambda: (run / "log.txt").is_file() and "kimg" in (run / "log.txt").read_text()


def test_sigterm_with_metrics_configured_saves_and_exits_without_running_them(tmp_path):
    run = tmp_path / "run"
    proc = _main(run, "--config.total_kimg=10", "--config.snapshot_kimg=5", "--config.metrics=fid50k_full", wait=False)
    assert _wait_for(_started(run), proc), proc.communicate()[0][-3000:]
    proc.send_signal(signal.SIGTERM)
    sent = time.time()
    out, _ = proc.communicate(timeout=300)
    assert time.time() - sent < 30, out[-3000:]
    assert proc.returncode == 0, out[-3000:]
    assert "Stop requested: skipped the metrics of step" in out and "SIGTERM: saved step" in out
    assert checkpoint.open_manager(str(run), read_only=True).latest_step() > 0
    assert not (run / "metrics.jsonl").exists()


def test_a_second_signal_exits_at_once(tmp_path):
    run = tmp_path / "run"
    proc = _main(run, "--config.total_kimg=10", "--config.snapshot_kimg=5", "--config.metrics=fid50k_full", wait=False)
    assert _wait_for(_started(run), proc), proc.communicate()[0][-3000:]
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
