"""The augmentation settings (probability multipliers and hyper-parameters) and the named presets."""
from __future__ import annotations

import dataclasses

BLIT = ("xflip", "rotate90", "xint")
GENERAL_GEOMETRIC = ("scale", "rotate", "aniso", "xfrac")
GEOMETRIC = BLIT + GENERAL_GEOMETRIC
COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
CHROMA = ("hue", "saturation")  # colour transforms that need more than one channel
TRANSFORMS = GEOMETRIC + COLOR + ("imgfilter", "noise", "cutout")  # every multiplier, in pipeline order


@dataclasses.dataclass(frozen=True)
class AugmentSpec:
    """Probability multipliers (0 disables a transform) and hyper-parameters of the ADA pipeline."""

    xflip: float = 0.0
    rotate90: float = 0.0
    xint: float = 0.0
    scale: float = 0.0
    rotate: float = 0.0
    aniso: float = 0.0
    xfrac: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    lumaflip: float = 0.0
    hue: float = 0.0
    saturation: float = 0.0
    imgfilter: float = 0.0
    noise: float = 0.0
    cutout: float = 0.0
    xint_max: float = 0.125
    scale_std: float = 0.2
    rotate_max: float = 1.0
    aniso_std: float = 0.2
    xfrac_std: float = 0.125
    brightness_std: float = 0.2
    contrast_std: float = 0.5
    hue_max: float = 1.0
    saturation_std: float = 1.0
    imgfilter_bands: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    imgfilter_std: float = 1.0
    noise_std: float = 0.1
    cutout_size: float = 0.5

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "imgfilter_bands":
                value = tuple(float(v) for v in value)
                if len(value) != 4:
                    raise ValueError(f"imgfilter_bands needs 4 band strengths, got {len(value)}")
            else:
                value = float(value)
            object.__setattr__(self, field.name, value)

    def enabled(self, channels: int) -> tuple[str, ...]:
        """Names of the transforms that draw and run for images with `channels` channels."""
        return tuple(n for n in TRANSFORMS if getattr(self, n) > 0 and not (channels == 1 and n in CHROMA))


_PRESET_TRANSFORMS = {
    "blit": BLIT,
    "geom": GENERAL_GEOMETRIC,
    "color": COLOR,
    "filter": ("imgfilter",),
    "noise": ("noise",),
    "cutout": ("cutout",),
    "bg": GEOMETRIC,
    "bgc": GEOMETRIC + COLOR,
    "bgcf": GEOMETRIC + COLOR + ("imgfilter",),
    "bgcfn": GEOMETRIC + COLOR + ("imgfilter", "noise"),
    "bgcfnc": GEOMETRIC + COLOR + ("imgfilter", "noise", "cutout"),
}
PRESETS: dict[str, AugmentSpec] = {
    name: AugmentSpec(**{t: 1.0 for t in transforms}) for name, transforms in _PRESET_TRANSFORMS.items()
}


def augment_spec(pipe: str, **overrides) -> AugmentSpec:
    """The named official preset `pipe` (e.g. 'bgc'), with any field replaced by `overrides`."""
    if pipe not in PRESETS:
        raise ValueError(f"unknown augmentation pipe {pipe!r}; known pipes: {', '.join(PRESETS)}")
    known = {f.name for f in dataclasses.fields(AugmentSpec)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown augmentation option(s) {', '.join(unknown)}; known options: {', '.join(sorted(known))}")
    return dataclasses.replace(PRESETS[pipe], **overrides)
