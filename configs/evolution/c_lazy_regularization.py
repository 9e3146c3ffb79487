"""Evolution step C = B + lazy regularisation: R1 every 16 D steps (G's Adam corrected for every 4)."""
from stylegan_jax.configs_common import sibling_config


def get_config(variant=""):
    c = sibling_config(__file__, "b_weight_demodulation.py", variant)
    c.loss.g_reg_interval = 4
    c.loss.d_reg_interval = 16
    return c
