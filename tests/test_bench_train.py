"""benchmarks/bench_train.py kept from rotting: every preset builds, the device table answers, and the
tiny config is measured in-process with every column filled."""
import math
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_train  # noqa: E402
from train_presets import PRESETS, Preset, _from_file, peak_tflops  # noqa: E402

from stylegan_jax.training import config as config_lib  # noqa: E402


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_a_valid_config(name):
    preset = PRESETS[name]
    config = bench_train.build_config(preset, None, 1, "bfloat16", True)
    g_spec, d_spec = config_lib.network_specs(config, 0, config.dataset.channels)
    assert g_spec[1]["remat"] and d_spec[1]["remat"] and g_spec[1]["compute_dtype"] == "bfloat16"
    if not preset.small:  # the official per-GPU batch
        assert config.batch_size == preset.make_config().batch_size // 8


@pytest.mark.parametrize("kind, tflops", [("NVIDIA H100 80GB HBM3", 989), ("NVIDIA H100 PCIe", 756),
                                          ("NVIDIA H200", 989), ("NVIDIA A100-SXM4-40GB", 312), ("TPU v4", 275),
                                          ("TPU v5 lite", 197), ("TPU v5", 459), ("TPU v4 lite", None),
                                          ("cpu", None)])
def test_peak_tflops_of_known_devices(kind, tflops):
    assert peak_tflops(kind) == tflops


def test_tiny_config_row_has_every_column():
    row = bench_train.measure(PRESETS["tiny"], runs=1, periods=1, peak=1.0, warm_cache=False)
    assert set(row["compile_cold"]) == {"Gmain", "Greg", "Dmain", "Dreg", "EMA"}
    assert set(row["phase_ms"]) == set(row["compile_cold"])
    assert all(seconds > 0 for seconds in row["compile_cold"].values())
    assert row["images_per_s"] > 0 and row["temps_mb"] > 0 and row["args_mb"] > 0
    assert row["gflop_per_image"] > 0 and row["tflops"] > 0 and 0 < row["mfu"] < 1
    assert row["augment_ms"] > 0 and row["augment_share"] > 0  # the tiny config runs ADA
    cells = bench_train.format_row(row)
    assert len(cells) == len(bench_train.HEADER)
    assert all(not (isinstance(c, float) and math.isnan(c)) for c in cells)


def _narrow_r3gan_study():
    c = _from_file("configs/study_digits32_r3gan.py")
    c.model.r3gan.widths, c.model.r3gan.cardinalities = (8, 8, 8, 8), (2, 2, 2, 2)
    c.batch_size = 8
    return c


def test_r3gan_row_times_its_scheduled_phases_on_two_real_batches():
    row = bench_train.measure(Preset("r3gan", _narrow_r3gan_study, None, small=True), runs=1, periods=1,
                              peak=1.0, warm_cache=False)
    assert set(row["compile_cold"]) == set(row["phase_ms"]) == {"D", "G", "EMA"}
    assert row["images_per_s"] > 0 and row["gflop_per_image"] > 0 and "augment_ms" not in row
