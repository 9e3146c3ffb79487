"""StyleGAN2 config F on FFHQ 1024x1024: official hyper-parameters, batch 32, gamma 10.

Variants: --config=configs/ffhq.py:stylegan3-t (or stylegan3-r) with the StyleGAN3 paper's gamma 32.8.
"""
from stylegan_jax.training.config import official_config


def get_config(arch: str = "stylegan2"):
    c = official_config(arch, batch_size=32, r1_gamma=10.0 if arch == "stylegan2" else 32.8)
    c.total_kimg = 25000.0
    c.snapshot_kimg = 200.0
    c.metrics = ("fid50k_full",)
    c.dataset.path = "/data/ffhq"       # an image folder, a zip, or TFRecord shards (dataset.source)
    c.dataset.resolution = 1024
    c.dataset.xflip = True
    return c
