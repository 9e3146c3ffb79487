"""Evolution step D = C + path-length regularisation of G (weight 2, every 4 steps, half batch)."""
from stylegan_jax.configs_common import sibling_config


def get_config(variant=""):
    c = sibling_config(__file__, "c_lazy_regularization.py", variant)
    c.loss.pl_weight = 2.0
    return c
