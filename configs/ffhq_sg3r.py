"""StyleGAN3-R on FFHQ 1024x1024 with the official hyper-parameters, doubled widths and the D-input blur."""
from stylegan_jax.configs_common import ffhq_config


def get_config():
    return ffhq_config("stylegan3-r")
