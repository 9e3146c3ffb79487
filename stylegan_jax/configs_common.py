"""Presets shared by the experiment files in configs/ (which ml_collections loads by path)."""
from __future__ import annotations

import importlib.util
import os

import ml_collections

from stylegan_jax.training.config import default_config, official_config


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


def sibling_config(this_file: str, name: str, variant: str = "") -> ml_collections.ConfigDict:
    """get_config(variant) of the config file `name` in the folder of `this_file`."""
    path = os.path.join(os.path.dirname(os.path.abspath(this_file)), name)
    spec = importlib.util.spec_from_file_location(f"stylegan_jax_config_{name.removesuffix('.py')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(variant) if variant else module.get_config()


EVOLUTION_VARIANTS = ("", "small")


def stylegan2019_config(variant: str = "") -> ml_collections.ConfigDict:
    """Config A of the StyleGAN2 paper's Table 1: the 2019 StyleGAN with progressive growing.

    '' is the paper's setting (FFHQ 1024, its widths, batch 32); 'small' is the same recipe scaled
    down to scikit-learn's digits at 32x32 (grows 8 -> 16 -> 32), which trains on a CPU.
    """
    if variant not in EVOLUTION_VARIANTS:
        raise ValueError(f"variant must be one of {EVOLUTION_VARIANTS}, got {variant!r}")
    c = default_config()
    c.model.arch = "stylegan"
    c.model.channel_base = 16384      # the 2019 fmap_base 8192 (configs A-E)
    c.loss.r1_gamma = 10.0
    c.loss.pl_weight = 0.0
    c.loss.g_reg_interval = 0         # no lazy regularisation: R1 every step
    c.loss.d_reg_interval = 0
    c.optimizer.g_lr = c.optimizer.d_lr = 0.001
    c.ema_kimg = 10.0
    c.ema_rampup = -1.0
    c.progressive.initial_resolution = 8
    c.progressive.training_kimg = 600.0
    c.progressive.transition_kimg = 600.0
    c.progressive.lr_by_resolution = ((128, 0.0015), (256, 0.002), (512, 0.003), (1024, 0.003))
    c.progressive.batch_by_resolution = ((8, 256), (16, 128), (32, 64), (64, 32))  # the official minibatch_dict
    if variant == "":
        c.total_kimg = 25000.0
        c.metrics = ("fid50k_full",)
        c.dataset.path = "/data/ffhq"
        c.dataset.resolution = 1024
        c.dataset.xflip = True
        return c
    c.total_kimg = 12.0
    c.batch_size = 16
    c.snapshot_kimg = 2.0
    c.tick_kimg = 0.5
    c.max_to_keep = 10
    c.dataset.source = "digits"
    c.dataset.resolution = 32
    c.dataset.channels = 1
    c.model.z_dim = c.model.w_dim = 64
    c.model.map_layers = 2
    c.model.channel_base = 1024
    c.model.channel_max = 64
    c.model.num_fp16_res = 0
    c.loss.r1_gamma = 1.0             # every step keeps this gamma at this scale (the paper's E uses 100 at 1024)
    c.ema_kimg = 1.0
    c.progressive.training_kimg = 2.0
    c.progressive.transition_kimg = 2.0
    c.progressive.batch_by_resolution = ((8, 64), (16, 32))  # the official pattern: twice the batch per level down
    return c
