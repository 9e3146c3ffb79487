"""Dataset presets shared by the experiment files in configs/ (which ml_collections loads by path)."""
from __future__ import annotations

import ml_collections

from stylegan_jax.training.config import official_config


def ffhq_config(arch: str) -> ml_collections.ConfigDict:
    """FFHQ 1024x1024 with the official hyper-parameters of `arch`: batch 32, gamma 10 (StyleGAN2) or 32.8."""
    c = official_config(arch, batch_size=32, r1_gamma=10.0 if arch == "stylegan2" else 32.8)
    c.total_kimg = 25000.0
    c.snapshot_kimg = 200.0
    c.metrics = ("fid50k_full",)
    c.dataset.path = "/data/ffhq"       # an image folder, a zip, or TFRecord shards (dataset.source)
    c.dataset.resolution = 1024
    c.dataset.xflip = True
    return c
