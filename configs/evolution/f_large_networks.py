"""Evolution step F = E with networks twice as wide: StyleGAN2 config F."""
from stylegan_jax.configs_common import sibling_config


def get_config(variant=""):
    c = sibling_config(__file__, "e_no_growing.py", variant)
    c.model.channel_base *= 2
    if variant == "small":
        c.model.channel_max *= 2
    return c
