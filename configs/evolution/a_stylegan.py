"""Evolution step A: the 2019 StyleGAN (AdaIN generator, progressive-GAN discriminator, progressive
growing from 8x8, non-saturating loss with R1 every step, no path-length regularisation).

`--config=configs/evolution/a_stylegan.py` is the paper's setting; `...a_stylegan.py:small` trains on a CPU.
"""
from stylegan_jax.configs_common import stylegan2019_config


def get_config(variant=""):
    return stylegan2019_config(variant)
