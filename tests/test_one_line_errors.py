"""Bad flags and values of the command-line tools end in one `error:` line, before any work is done."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "tests", "tiny_config.py")


def _run(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": ROOT})


@pytest.mark.slow
@pytest.mark.parametrize("override, code, message", [
    ("--config.batchsize=8", 2, """error: unknown config key 'batchsize'; Did you mean "batch_size" instead"""),
    ("--config.batch_size=abc", 2, "error: flag --config.batch_size=abc: invalid literal for int()"),
    ("--config.model.z_dim=0", 1, "error: config.model.z_dim must be >= 1, got 0"),
    ("--config.model.channel_max=0", 1, "error: config.model.channel_max must be >= 1, got 0"),
])
def test_main_refuses_a_bad_config_in_one_line_before_creating_the_workdir(tmp_path, override, code, message):
    result = _run(tmp_path, "stylegan_jax.main", f"--config={CONFIG}", "--workdir=run", override)
    assert (result.returncode, result.stderr.strip().splitlines()) == (code, [result.stderr.strip()])
    assert result.stderr.startswith(message)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["--trunc=nan", "--trunc=inf", "--rotate=-inf"])
def test_generate_refuses_non_finite_numbers(tmp_path, flag):
    result = _run(tmp_path, "stylegan_jax.generate", "--network=G.pkl", "--seeds=0", "--outdir=out", flag)
    name, value = flag.split("=")
    assert result.returncode == 2
    assert result.stderr == (f"python -m stylegan_jax.generate: error: argument {name}: "
                             f"expected a finite number, got '{value}'\n")
