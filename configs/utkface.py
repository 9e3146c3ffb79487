"""StyleGAN2 on UTKFace faces at 64x64 from an image folder: visible progress within an hour on one GPU."""
from stylegan_jax.training.config import official_config


def get_config():
    c = official_config("stylegan2", batch_size=64, r1_gamma=0.4)
    c.total_kimg = 2000.0
    c.snapshot_kimg = 100.0
    c.tick_kimg = 10.0
    c.metrics = ("fid10k_full",)
    c.dataset.path = "../shared/datasets/utkface"
    c.dataset.resolution = 64
    c.dataset.xflip = True
    c.model.z_dim = c.model.w_dim = 256
    c.model.map_layers = 4
    c.model.channel_base = 16384
    c.model.channel_max = 256
    c.model.num_fp16_res = 2
    c.model.compute_dtype = "bfloat16"
    c.optimizer.g_lr = c.optimizer.d_lr = 0.0025
    return c
