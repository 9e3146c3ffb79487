"""What `main` prints as it goes (and log.txt holds): config, data, networks, compilation, ticks, where things are."""
import json
import re

import jax
import numpy as np
import pytest
from test_train_e2e import _main, _restore

pytestmark = pytest.mark.slow


def _parameters(variables) -> str:
    return f"{sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(variables['params'])):,}"


def test_main_says_what_it_does_as_it_happens_and_where_its_outputs_are(tmp_path):
    run = tmp_path / "run"
    out = _main(run, "--config.total_kimg=0.016", "--config.tick_kimg=0.008", "--config.augment.mode=ada",
                "--config.augment.interval=1", "--config.augment.kimg=0.05")
    lines = [line for line in out.splitlines() if not line.startswith(("WARNING: All log messages", "I0000"))]
    state, _ = _restore(str(run))
    assert lines[:5] == [
        "Scanning the dataset (digits) ...",
        "Dataset: digits: 1797 images, 16x16, 3 channel(s), no labels, x-flip off",
        "Building the networks ...",
        f"Networks: stylegan2 G with {_parameters(state.g)} parameters, D with {_parameters(state.d)}, "
        "on 8 CPU device(s)",
        "Compiling the training phases (Gmain, Greg, Dmain, Dreg) and running the first iteration ...",
    ]
    assert re.fullmatch(r"First iteration done \d+ s after the start; a progress line follows every 0.008 kimg",
                        lines[5])
    ticks = lines[6:8]
    assert [tick.split()[:2] for tick in ticks] == [["kimg", "0.008"], ["kimg", "0.016"]]
    # ADA's p (it moves by 8 images / 50 per iteration) is in each tick; the last one is the saved p.
    assert re.search(r"\bp 0\.(0000|1600) ", ticks[0])
    assert f" p {float(state.augment_p):.4f} " in ticks[1]
    assert re.fullmatch(
        rf"Done: 0\.016 kimg in \d+ min \d+ s\. Checkpoint: step 2 in {re.escape(str(run / 'checkpoints'))}; "
        rf"sample grids: {re.escape(str(run / 'fakes_kimg*.png'))}; log: {re.escape(str(run / 'log.txt'))}; "
        rf"TensorBoard: {re.escape(str(run / 'tensorboard'))}", lines[8]), lines[8]
    assert len(lines) == 9

    log = (run / "log.txt").read_text()
    config_text, rest = log.split("\nScanning the dataset", 1)
    assert config_text.startswith("Config: {")
    config = json.loads(config_text[len("Config: "):])
    assert config["total_kimg"] == 0.016 and config["augment"]["mode"] == "ada"
    assert rest.splitlines()[1] == lines[1] and rest.splitlines()[-1] == lines[8]
