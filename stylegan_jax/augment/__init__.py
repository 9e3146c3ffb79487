"""ADA (adaptive discriminator augmentation) as pure JAX functions on NHWC float32 images."""
from stylegan_jax.augment.draws import draw_layout, draw_random, gated_params
from stylegan_jax.augment.filtering import HZ_FBANK
from stylegan_jax.augment.geometric import HZ_GEOM
from stylegan_jax.augment.pipeline import augment, augment_from_draws, params_from_draws
from stylegan_jax.augment.spec import PRESETS, TRANSFORMS, AugmentSpec, augment_spec

__all__ = ["AugmentSpec", "HZ_FBANK", "HZ_GEOM", "PRESETS", "TRANSFORMS", "augment", "augment_from_draws", "augment_spec",
           "draw_layout", "draw_random", "gated_params", "params_from_draws"]
