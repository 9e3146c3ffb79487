"""R3GAN's training schedules: cosine ramps over training images, and the generator EMA.

Learning rate, Adam's beta2, the penalty weight gamma, the EMA length and the augmentation
probability each move from a base to a final value along half a cosine over the first
`total_nimg` images and stay final after. They are host-side float64 numbers of the image count
seen before the step (as in the official loop); a trainer passes them into its jitted step.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax

from stylegan_jax.training.losses import lerp


@dataclasses.dataclass(frozen=True)
class CosineSchedule:
    """base at 0 images, final from `total_nimg` on, half a cosine in between."""

    base: float
    final: float
    total_nimg: float

    def __call__(self, nimg: float) -> float:
        if nimg > self.total_nimg:
            return float(self.final)
        # The fraction of the way done, formed as 1 - (1 + cos) / 2: near 0 images it rounds as the
        # official one does (the EMA length after 1 kimg differs by 1e-8 relative otherwise).
        done = 1 - 0.5 * (1 + math.cos(math.pi * nimg / self.total_nimg))
        return self.base + done * (self.final - self.base)


@dataclasses.dataclass(frozen=True)
class R3GANSchedules:
    """The scheduled quantities of one preset and the batch size of its official run."""

    lr: CosineSchedule
    beta2: CosineSchedule
    gamma: CosineSchedule
    ema_nimg: CosineSchedule
    aug_p: CosineSchedule
    batch_size: int

    def at(self, nimg: float) -> dict[str, float]:
        """Every scheduled value after `nimg` training images, and the EMA decay at this batch size."""
        values = {field.name: getattr(self, field.name)(nimg) for field in dataclasses.fields(self)
                  if isinstance(getattr(self, field.name), CosineSchedule)}
        values["ema_beta"] = ema_beta(self.batch_size, values["ema_nimg"])
        return values


def preset(total_nimg: float, gamma: tuple[float, float], ema_nimg: float, aug_p: float,
           batch_size: int) -> R3GANSchedules:
    """A preset's schedules: lr 2e-4 -> 5e-5 and beta2 0.9 -> 0.99 in every official preset, the EMA
    length and augmentation probability from 0, gamma from its (base, final)."""
    ramp = lambda base, final: CosineSchedule(base, final, total_nimg)
    return R3GANSchedules(ramp(2e-4, 5e-5), ramp(0.9, 0.99), ramp(*gamma), ramp(0, ema_nimg), ramp(0, aug_p),
                          batch_size)


# The official presets (train.py); batch sizes are those of the paper's reproduction commands.
PRESETS = {
    "CIFAR10": preset(2e7, (0.05, 0.005), ema_nimg=5e6, aug_p=0.55, batch_size=512),
    "FFHQ-64": preset(2e7, (2.0, 0.2), ema_nimg=5e5, aug_p=0.3, batch_size=256),
    "FFHQ-256": preset(2e7, (150.0, 15.0), ema_nimg=5e5, aug_p=0.3, batch_size=256),
    "ImageNet-32": preset(2e8, (0.5, 0.05), ema_nimg=5e7, aug_p=0.5, batch_size=4096),
    "ImageNet-64": preset(2e8, (1.0, 0.1), ema_nimg=5e7, aug_p=0.4, batch_size=4096),
}


def ema_beta(batch_size: int, ema_nimg: float) -> float:
    """The official EMA decay per step: half-life `ema_nimg` images (0 copies G)."""
    return 0.5 ** (batch_size / max(ema_nimg, 1e-8))


def update_ema(ema_params: Any, params: Any, beta: Any) -> Any:
    """beta * ema + (1 - beta) * params per leaf, rounded as torch's lerp (the official update)."""
    return jax.tree_util.tree_map(lambda p, e: lerp(p, e, beta), params, ema_params)
