"""StyleGAN2 config F on FFHQ 1024x1024 with the official hyper-parameters (8 GPUs / TPU chips, batch 32)."""
from stylegan_jax.training.config import default_config


def get_config():
    c = default_config()
    c.total_kimg = 25000.0
    c.batch_size = 32
    c.snapshot_kimg = 200.0
    c.metrics = ["fid50k_full"]
    c.dataset.source = "folder"
    c.dataset.path = "/data/ffhq"       # or gs://bucket/ffhq (TFRecord shards: dataset.source='tfrecord')
    c.dataset.resolution = 1024
    c.dataset.xflip = True
    c.model.arch = "stylegan2"
    c.model.map_layers = 8
    c.model.channel_base = 32768
    c.model.channel_max = 512
    c.model.num_fp16_res = 4
    c.loss.r1_gamma = 10.0
    c.loss.pl_weight = 2.0
    c.loss.style_mixing_prob = 0.9
    c.optimizer.g_lr = 0.002
    c.optimizer.d_lr = 0.002
    c.ema_kimg = c.batch_size * 10 / 32
    return c
