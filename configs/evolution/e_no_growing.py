"""Evolution step E = D without progressive growing: skip-connection G and residual D at full
resolution from the start, lr 0.002 (and gamma 100 at the paper's 1024x1024)."""
from stylegan_jax.configs_common import sibling_config


def get_config(variant=""):
    c = sibling_config(__file__, "d_path_length.py", variant)
    c.progressive.initial_resolution = 0
    c.progressive.lr_by_resolution = c.progressive.batch_by_resolution = ()
    c.model.g_architecture, c.model.d_architecture = "skip", "resnet"
    c.optimizer.g_lr = c.optimizer.d_lr = 0.002
    if variant == "":
        c.loss.r1_gamma = 100.0
    return c
