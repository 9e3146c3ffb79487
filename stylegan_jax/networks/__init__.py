"""Flax modules of the StyleGAN2 and StyleGAN3 networks."""
