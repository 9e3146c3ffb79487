"""StyleGAN2 and StyleGAN3 in JAX/Flax."""

__version__ = "0.1.0"
