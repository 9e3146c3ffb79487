"""StyleGAN2 on UTKFace faces at 64x64 from an image folder: visible progress within an hour on one GPU."""
from stylegan_jax.training.config import default_config


def get_config():
    c = default_config()
    c.total_kimg = 2000.0
    c.batch_size = 64
    c.snapshot_kimg = 100.0
    c.tick_kimg = 10.0
    c.metrics = ["fid10k_full"]
    c.dataset.source = "folder"
    c.dataset.path = "../shared/datasets/utkface"
    c.dataset.resolution = 64
    c.dataset.xflip = True
    c.model.arch = "stylegan2"
    c.model.z_dim = 256
    c.model.w_dim = 256
    c.model.map_layers = 4
    c.model.channel_base = 16384
    c.model.channel_max = 256
    c.model.num_fp16_res = 2
    c.model.compute_dtype = "bfloat16"
    c.loss.r1_gamma = 0.4
    c.loss.pl_weight = 2.0
    c.loss.style_mixing_prob = 0.9
    c.optimizer.g_lr = 0.0025
    c.optimizer.d_lr = 0.0025
    c.ema_kimg = c.batch_size * 10 / 32
    return c
