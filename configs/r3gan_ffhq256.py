"""R3GAN's official FFHQ-256 preset (train.py --preset=FFHQ-256, the paper's batch and flags)."""
from stylegan_jax.training.config import official_r3gan_config


def get_config():
    c = official_r3gan_config("FFHQ-256")
    c.metrics = ("fid50k_full",)
    c.dataset.path = "/data/ffhq256"  # an image folder, a zip, or TFRecord shards (dataset.source)
    return c
