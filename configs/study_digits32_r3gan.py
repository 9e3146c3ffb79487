"""Study: R3GAN on the 1,797 digits at 32x32 (RGB), against configs/study_digits32_sg2.py.

About 0.3M parameters per network (16 channels per group, as the presets), batch 32, no
augmentation; the CIFAR10 preset's schedules compressed into the run's 20 kimg.
"""
from stylegan_jax.training.config import official_r3gan_config


def get_config():
    c = official_r3gan_config("CIFAR10")
    c.total_kimg = 20.0
    c.batch_size = 32
    c.snapshot_kimg = 5.0
    c.tick_kimg = 1.0
    c.max_to_keep = 20
    c.metrics = ()
    c.dataset.source = "digits"
    c.dataset.resolution = 32
    c.dataset.xflip = False
    c.dataset.use_labels = False
    c.augment.mode = "none"
    c.model.compute_dtype = "float32"
    c.model.r3gan.widths = (64, 64, 64, 64)
    c.model.r3gan.cardinalities = (8, 8, 8, 8)
    c.model.r3gan.fp16_stages = ()
    c.schedule.decay_kimg = 20.0
    c.schedule.ema_kimg = (0.0, 2.0)
    return c
