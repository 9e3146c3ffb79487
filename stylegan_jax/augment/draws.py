"""The random draws of one pipeline call (layout and sampling) and the gated per-sample parameters."""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.augment.spec import AugmentSpec

Draw = tuple[str, tuple[int, ...], str]
NUM_BANDS = 4
_F32 = np.float32


def _transform_draws(name: str, batch: int, channels: int, height: int, width: int) -> list[Draw]:
    """The draws of one enabled transform in consumption order, as (fn, NCHW-convention shape, role)."""
    b = (batch,)
    pair = {  # transform -> (param fn, param shape, gate shape): the param is drawn before the gate
        "xflip": ("rand", b, b), "rotate90": ("rand", b, b), "xint": ("rand", (batch, 2), (batch, 1)),
        "scale": ("randn", b, b), "rotate_pre": ("rand", b, b), "aniso": ("randn", b, b),
        "rotate_post": ("rand", b, b), "xfrac": ("randn", (batch, 2), (batch, 1)),
        "brightness": ("randn", b, b), "contrast": ("randn", b, b),
        "lumaflip": ("rand", (batch, 1, 1), (batch, 1, 1)), "hue": ("rand", b, b),
        "saturation": ("randn", (batch, 1, 1), (batch, 1, 1)),
    }
    if name in pair:
        fn, param_shape, gate_shape = pair[name]
        return [(fn, param_shape, f"{name}/param"), ("rand", gate_shape, f"{name}/gate")]
    if name == "imgfilter":
        return [d for j in range(NUM_BANDS)
                for d in (("randn", b, f"imgfilter_band{j}/param"), ("rand", b, f"imgfilter_band{j}/gate"))]
    if name == "noise":
        return [("randn", (batch, 1, 1, 1), "noise/param"), ("rand", (batch, 1, 1, 1), "noise/gate"),
                ("randn", (batch, channels, height, width), "noise/field")]
    # cutout: the gate comes before the centre
    return [("rand", (batch, 1, 1, 1, 1), "cutout/gate"), ("rand", (batch, 2, 1, 1, 1), "cutout/param")]


# Draw groups in consumption order; the two rotations belong to the transform 'rotate'.
_ORDER = ("xflip", "rotate90", "xint", "scale", "rotate_pre", "aniso", "rotate_post", "xfrac", "brightness",
          "contrast", "lumaflip", "hue", "saturation", "imgfilter", "noise", "cutout")


def draw_layout(spec: AugmentSpec, batch: int, channels: int, height: int, width: int) -> list[Draw]:
    """(fn 'rand'|'randn', shape, role) of every draw one pipeline call makes, in the official order."""
    enabled = spec.enabled(channels)
    return [draw for group in _ORDER if group.split("_")[0] in enabled
            for draw in _transform_draws(group, batch, channels, height, width)]


def draw_random(key: jax.Array, spec: AugmentSpec, batch: int, channels: int, height: int,
                width: int) -> list[jax.Array]:
    """Samples the draws of `draw_layout` (uniform [0, 1) or standard normal, float32)."""
    layout = draw_layout(spec, batch, channels, height, width)
    keys = jax.random.split(key, max(len(layout), 1))
    samplers = {"rand": jax.random.uniform, "randn": jax.random.normal}
    return [samplers[fn](k, shape, jnp.float32) for k, (fn, shape, _) in zip(keys, layout)]


def _signed(u, scale: float):
    """(2u - 1) * scale in float32, evaluated in that order."""
    return (u * _F32(2) - _F32(1)) * _F32(scale)


def _angle(u, turns: float):
    """(2u - 1) * pi * turns in float32, evaluated in that order."""
    return _signed(u, np.pi) * _F32(turns)


def gated_params(draws: Sequence[jax.Array], p, spec: AugmentSpec, batch: int, channels: int, height: int,
                 width: int) -> dict[str, jax.Array]:
    """Per-sample parameters after gating (the `params/*` of the golden file, flattened to [B] or [B, k]).

    A sample whose gate draw u is not below multiplier * p (float32, strict) gets the neutral value.
    """
    layout = draw_layout(spec, batch, channels, height, width)
    if len(draws) != len(layout):
        raise ValueError(f"expected {len(layout)} draws for this spec and image shape, got {len(draws)}")
    d = {role: jnp.asarray(x, jnp.float32) for (_, _, role), x in zip(layout, draws)}
    p = jnp.asarray(p, jnp.float32)

    def gate(name: str, threshold, value, neutral):
        on = d[f"{name}/gate"] < threshold
        return jnp.where(on, value, jnp.asarray(neutral, jnp.float32))

    out = {}
    enabled = spec.enabled(channels)
    if "xflip" in enabled:
        out["xflip_i"] = gate("xflip", _F32(spec.xflip) * p, jnp.floor(d["xflip/param"] * _F32(2)), 0)
    if "rotate90" in enabled:
        out["rotate90_k"] = gate("rotate90", _F32(spec.rotate90) * p, jnp.floor(d["rotate90/param"] * _F32(4)), 0)
    if "xint" in enabled:
        t = gate("xint", _F32(spec.xint) * p, _signed(d["xint/param"], spec.xint_max), 0)
        out["xint_shift_px"] = jnp.round(t * jnp.asarray([width, height], jnp.float32))
    if "scale" in enabled:
        s = jnp.exp2(d["scale/param"] * _F32(spec.scale_std))
        out["scale_s"] = gate("scale", _F32(spec.scale) * p, s, 1)
    if "rotate" in enabled:
        p_rot = _F32(1) - jnp.sqrt(jnp.clip(_F32(1) - _F32(spec.rotate) * p, 0, 1))
        out["p_rot"] = p_rot
        out["rotate_pre_theta"] = gate("rotate_pre", p_rot, _angle(d["rotate_pre/param"], spec.rotate_max), 0)
        out["rotate_post_theta"] = gate("rotate_post", p_rot, _angle(d["rotate_post/param"], spec.rotate_max), 0)
    if "aniso" in enabled:
        s = jnp.exp2(d["aniso/param"] * _F32(spec.aniso_std))
        out["aniso_s"] = gate("aniso", _F32(spec.aniso) * p, s, 1)
    if "xfrac" in enabled:
        t = gate("xfrac", _F32(spec.xfrac) * p, d["xfrac/param"] * _F32(spec.xfrac_std), 0)
        out["xfrac_shift_px"] = t * jnp.asarray([width, height], jnp.float32)
    if "brightness" in enabled:
        b = d["brightness/param"] * _F32(spec.brightness_std)
        out["brightness_b"] = gate("brightness", _F32(spec.brightness) * p, b, 0)
    if "contrast" in enabled:
        c = jnp.exp2(d["contrast/param"] * _F32(spec.contrast_std))
        out["contrast_c"] = gate("contrast", _F32(spec.contrast) * p, c, 1)
    if "lumaflip" in enabled:
        i = gate("lumaflip", _F32(spec.lumaflip) * p, jnp.floor(d["lumaflip/param"] * _F32(2)), 0)
        out["lumaflip_i"] = i.reshape(batch)
    if "hue" in enabled:
        out["hue_theta"] = gate("hue", _F32(spec.hue) * p, _angle(d["hue/param"], spec.hue_max), 0)
    if "saturation" in enabled:
        s = jnp.exp2(d["saturation/param"] * _F32(spec.saturation_std))
        out["saturation_s"] = gate("saturation", _F32(spec.saturation) * p, s, 1).reshape(batch)
    if "imgfilter" in enabled:
        gains = [gate(f"imgfilter_band{j}", _F32(spec.imgfilter) * p * _F32(strength),
                      jnp.exp2(d[f"imgfilter_band{j}/param"] * _F32(spec.imgfilter_std)), 1)
                 for j, strength in enumerate(spec.imgfilter_bands)]
        out["imgfilter_band_gain"] = jnp.stack(gains, axis=1)
    if "noise" in enabled:
        sigma = jnp.abs(d["noise/param"]) * _F32(spec.noise_std)
        out["noise_sigma"] = gate("noise", _F32(spec.noise) * p, sigma, 0).reshape(batch)
        out["noise_field"] = jnp.transpose(d["noise/field"], (0, 2, 3, 1))  # NCHW draw -> NHWC
    if "cutout" in enabled:
        size = gate("cutout", _F32(spec.cutout) * p, _F32(spec.cutout_size), 0)
        out["cutout_size"] = size.reshape(batch)
        out["cutout_center"] = d["cutout/param"].reshape(batch, 2)
    return out
