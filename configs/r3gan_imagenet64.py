"""R3GAN's official ImageNet-64 preset (train.py --preset=ImageNet-64, the paper's batch and flags)."""
from stylegan_jax.training.config import official_r3gan_config


def get_config():
    c = official_r3gan_config("ImageNet-64")
    c.metrics = ("fid50k_full",)
    c.dataset.path = "/data/imagenet64"  # an image folder, a zip, or TFRecord shards (dataset.source)
    return c
