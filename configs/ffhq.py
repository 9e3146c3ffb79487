"""StyleGAN2 config F on FFHQ 1024x1024: official hyper-parameters, batch 32, gamma 10.

Variants: --config=configs/ffhq.py:stylegan3-t (or stylegan3-r) with the StyleGAN3 paper's gamma 32.8.
"""
from stylegan_jax.configs_common import ffhq_config


def get_config(arch: str = "stylegan2"):
    return ffhq_config(arch)
