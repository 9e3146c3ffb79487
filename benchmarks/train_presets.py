"""The training configurations bench_train.py measures, the official timings of the same configurations,
and the peak throughput of known accelerators."""
from __future__ import annotations

import dataclasses
import importlib.util
import pathlib
import re
from typing import Callable

import ml_collections

from stylegan_jax.training.config import official_config, official_r3gan_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
OFFICIAL_GPUS = 8  # the official s/kimg figures are for 8 GPUs


@dataclasses.dataclass(frozen=True)
class Preset:
    """A configuration to benchmark; `official` is its s/kimg on 8 V100s and on 8 A100s (docs/configs.md of
    NVlabs/stylegan3), None where no official timing exists."""

    name: str
    make_config: Callable[[], ml_collections.ConfigDict]
    official: tuple[float, float] | None
    official_options: str = ""
    small: bool = False  # a test configuration: its own batch, spread over the devices (else the official per-GPU one)


def _from_file(relative_path: str, *args) -> ml_collections.ConfigDict:
    """get_config(*args) of a config file of this repository (configs/ or tests/ are not packages)."""
    spec = importlib.util.spec_from_file_location(pathlib.Path(relative_path).stem, ROOT / relative_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(*args)


def _paper256() -> ml_collections.ConfigDict:
    """StyleGAN2 at 256x256 as the official `paper256` configuration (config F at half width)."""
    c = official_config("stylegan2", batch_size=64, r1_gamma=1.0)
    c.dataset.resolution = 256
    c.model.channel_base = 16384
    c.model.mbstd_group_size = 8
    c.optimizer.g_lr = c.optimizer.d_lr = 0.0025
    return c


def _stylegan3_256(arch: str) -> ml_collections.ConfigDict:
    c = official_config(arch, batch_size=32, r1_gamma=2.0)
    c.dataset.resolution = 256
    return c


PRESETS = {p.name: p for p in [
    Preset("tiny", lambda: _from_file("tests/tiny_config.py"), None, small=True),
    Preset("quickstart", lambda: _from_file("configs/quickstart.py"), None, small=True),
    Preset("r3gan_digits32", lambda: _from_file("configs/study_digits32_r3gan.py"), None, small=True),
    Preset("sg2_256", _paper256, (4.01, 2.47),
           "--cfg=stylegan2 --batch=64 --gamma=1 --cbase=16384 --glr=0.0025 --dlr=0.0025 --mbstd-group=8 (paper256)"),
    Preset("sg2_1024", lambda: _from_file("configs/ffhq.py", "stylegan2"), (17.55, 14.57),
           "--cfg=stylegan2 --batch=32 --gamma=10"),
    Preset("sg3t_256", lambda: _stylegan3_256("stylegan3-t"), (13.04, 7.32), "--cfg=stylegan3-t --batch=32 --gamma=2"),
    Preset("sg3r_256", lambda: _stylegan3_256("stylegan3-r"), (11.88, 8.03), "--cfg=stylegan3-r --batch=32 --gamma=2"),
    Preset("sg3t_1024", lambda: _from_file("configs/ffhq_sg3t.py"), (28.71, 20.01),
           "--cfg=stylegan3-t --batch=32 --gamma=32.8"),
    Preset("sg3r_1024", lambda: _from_file("configs/ffhq_sg3r.py"), (34.12, 23.42),
           "--cfg=stylegan3-r --batch=32 --gamma=32.8"),
    Preset("r3gan_cifar10", lambda: official_r3gan_config("CIFAR10"), None, "--preset=CIFAR10 (R3GAN)"),
    Preset("r3gan_ffhq256", lambda: official_r3gan_config("FFHQ-256"), None, "--preset=FFHQ-256 (R3GAN)"),
]}

# Dense bfloat16 peak per chip (the matrix units without sparsity), found by searching
# jax.Device.device_kind for the pattern, in this order; float32 convolutions run in TF32 on these
# GPUs (half this rate) and in bfloat16 passes on TPUs.
PEAK_TFLOPS = [
    (r"H100 PCIe", 756.0, "NVIDIA H100 datasheet: 1,513 TFLOPS BF16 with sparsity, half without"),
    (r"H100", 989.0, "NVIDIA H100 SXM datasheet: 1,979 TFLOPS BF16 with sparsity, half without"),
    (r"H200", 989.0, "NVIDIA H200 SXM datasheet: 1,979 TFLOPS BF16 with sparsity, half without"),
    (r"A100", 312.0, "NVIDIA A100 datasheet: 312 TFLOPS BF16 (624 with sparsity)"),
    (r"^TPU v4$", 275.0, "cloud.google.com/tpu/docs/v4: 275 TFLOPS bf16 per chip"),
    (r"^TPU v5 lite$", 197.0, "cloud.google.com/tpu/docs/v5e: 197 TFLOPS bf16 per chip (v5e)"),
    (r"^TPU v5p?$", 459.0, "cloud.google.com/tpu/docs/v5p: 459 TFLOPS bf16 per chip (v5p)"),
]


def peak_tflops(device_kind: str) -> float | None:
    """The dense bfloat16 peak of a device kind from PEAK_TFLOPS, None when unknown (e.g. CPUs)."""
    for pattern, tflops, _ in PEAK_TFLOPS:
        if re.search(pattern, device_kind):
            return tflops
    return None
