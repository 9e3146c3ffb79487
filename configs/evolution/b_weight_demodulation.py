"""Evolution step B = A + weight demodulation: the revised generator (modulated, demodulated convs;
noise and bias outside the style block) and discriminator of StyleGAN2, still growing progressively."""
from stylegan_jax.configs_common import sibling_config


def get_config(variant=""):
    c = sibling_config(__file__, "a_stylegan.py", variant)
    c.model.arch = "stylegan2"
    c.model.g_architecture = c.model.d_architecture = "progressive"
    return c
