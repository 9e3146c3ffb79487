"""Study: StyleGAN2 on the 1,797 digits at 32x32 (RGB), against configs/study_digits32_r3gan.py.

Both have about 0.3M parameters per network, batch 32, no augmentation and the same data; each
follows its own official recipe otherwise (here: lazy R1 and path length, style mixing, Adam 0.0025).
"""
from stylegan_jax.training.config import default_config


def get_config():
    c = default_config()
    c.total_kimg = 20.0
    c.batch_size = 32
    c.snapshot_kimg = 5.0
    c.tick_kimg = 1.0
    c.max_to_keep = 20
    c.dataset.source = "digits"
    c.dataset.resolution = 32
    c.model.z_dim = c.model.w_dim = 64
    c.model.map_layers = 2
    c.model.channel_base = 4096
    c.model.channel_max = 64
    c.model.num_fp16_res = 0
    c.loss.r1_gamma = 1.0
    c.optimizer.g_lr = c.optimizer.d_lr = 0.0025
    c.ema_kimg = 2.0
    return c
