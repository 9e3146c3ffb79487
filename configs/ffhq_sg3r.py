"""StyleGAN3-R on FFHQ 1024x1024 with the official hyper-parameters, including the D-input blur."""
from stylegan_jax.training.config import default_config


def get_config():
    c = default_config()
    c.total_kimg = 25000.0
    c.batch_size = 32
    c.snapshot_kimg = 200.0
    c.metrics = ["fid50k_full"]
    c.dataset.source = "folder"
    c.dataset.path = "/data/ffhq"
    c.dataset.resolution = 1024
    c.dataset.xflip = True
    c.model.arch = "stylegan3-r"
    c.model.map_layers = 2
    c.model.channel_base = 65536   # doubled feature maps, as the official -R config
    c.model.channel_max = 1024
    c.model.num_fp16_res = 4
    c.loss.r1_gamma = 32.8
    c.loss.pl_weight = 0.0
    c.loss.style_mixing_prob = 0.0
    c.loss.blur_init_sigma = 10.0
    c.loss.blur_fade_kimg = c.batch_size * 200 / 32
    c.optimizer.g_lr = 0.0025
    c.optimizer.d_lr = 0.002
    c.ema_kimg = c.batch_size * 10 / 32
    return c
