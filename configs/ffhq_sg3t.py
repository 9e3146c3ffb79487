"""StyleGAN3-T on FFHQ 1024x1024 with the official hyper-parameters (batch 32, gamma 32.8)."""
from stylegan_jax.configs_common import ffhq_config


def get_config():
    return ffhq_config("stylegan3-t")
