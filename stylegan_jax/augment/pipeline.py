"""The ADA pipeline: draws -> per-sample parameters -> geometric, colour, filter, noise and cutout stages."""
from __future__ import annotations

from typing import Sequence

import jax

from stylegan_jax.augment import color, filtering, geometric
from stylegan_jax.augment.draws import draw_random, gated_params
from stylegan_jax.augment.spec import COLOR, GEOMETRIC, AugmentSpec


def params_from_draws(draws: Sequence[jax.Array], p, spec: AugmentSpec,
                      image_shape: tuple[int, int, int, int]) -> dict[str, jax.Array]:
    """Every per-sample parameter of one call on NHWC images of `image_shape`, keyed like `params/*`.

    Adds to the gated parameters G_inv, geom_pad_lrtb and geom_theta (geometric stage on),
    color_matrix (colour stage on), imgfilter_gain (overall band gains) and imgfilter_taps (filter on).
    """
    batch, height, width, channels = image_shape
    params = gated_params(draws, p, spec, batch, channels, height, width)
    enabled = spec.enabled(channels)
    if any(name in enabled for name in GEOMETRIC):
        params["G_inv"] = geometric.inverse_matrix(params, batch)
        params["geom_pad_lrtb"] = geometric.padding(params["G_inv"], height, width)
        params["geom_theta"] = geometric.sampling_matrix(params["G_inv"], params["geom_pad_lrtb"], height, width)
    if any(name in enabled for name in COLOR):
        params["color_matrix"] = color.color_matrix(params, batch)
    if "imgfilter" in enabled:
        params["imgfilter_gain"] = filtering.combined_gain(params["imgfilter_band_gain"])
        params["imgfilter_taps"] = filtering.filter_taps(params["imgfilter_gain"])
    return params


def augment_from_draws(images: jax.Array, draws: Sequence[jax.Array], p, spec: AugmentSpec) -> jax.Array:
    """Augments NHWC float32 images with the given raw draws (official order) at probability scale p."""
    params = params_from_draws(draws, p, spec, images.shape)
    x = images
    if "geom_theta" in params:
        x = geometric.apply_geometric(x, params["geom_theta"], params["geom_pad_lrtb"])
    if "color_matrix" in params:
        x = color.apply_color(x, params["color_matrix"])
    if "imgfilter_taps" in params:
        x = filtering.apply_filter(x, params["imgfilter_taps"])
    if "noise_sigma" in params:
        x = filtering.add_noise(x, params["noise_field"], params["noise_sigma"])
    if "cutout_size" in params:
        x = filtering.cutout(x, params["cutout_size"], params["cutout_center"])
    return x


def augment(images: jax.Array, key: jax.Array, p, spec: AugmentSpec) -> jax.Array:
    """Augments NHWC images with fresh draws from `key` (draw_random + augment_from_draws)."""
    batch, height, width, channels = images.shape
    return augment_from_draws(images, draw_random(key, spec, batch, channels, height, width), p, spec)
