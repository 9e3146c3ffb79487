"""Conversion to and from NVIDIA's official StyleGAN2/3 weights."""
from stylegan_jax.convert.state_dict import from_official_state_dict, to_official_state_dict
