"""R3GAN on UTKFace faces at 64x64 from an image folder: the FFHQ-64 preset's schedules compressed into
2,000 kimg and narrower stages, for visible progress within an hour on one GPU (compare configs/utkface.py)."""
from stylegan_jax.training.config import official_r3gan_config


def get_config():
    c = official_r3gan_config("FFHQ-64")
    c.batch_size = 64
    c.total_kimg = 2000.0
    c.snapshot_kimg = 100.0
    c.tick_kimg = 10.0
    c.metrics = ("fid10k_full",)
    c.dataset.path = "../shared/datasets/utkface"
    c.model.r3gan.widths = (384, 384, 384, 384, 192)  # about the parameters of configs/utkface.py
    c.model.r3gan.cardinalities = (48, 48, 48, 48, 24)  # 16 channels per group, as the presets
    c.model.r3gan.fp16_stages = (-1, -2)
    c.schedule.decay_kimg = 2000.0
    c.schedule.ema_kimg = (0.0, 50.0)
    return c
