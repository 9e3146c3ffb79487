"""R3GAN's official CIFAR10 preset (train.py --preset=CIFAR10, the paper's batch and flags)."""
from stylegan_jax.training.config import official_r3gan_config


def get_config():
    c = official_r3gan_config("CIFAR10")
    c.metrics = ("fid50k_full",)
    c.dataset.path = "/data/cifar10"  # an image folder, a zip, or TFRecord shards (dataset.source)
    return c
