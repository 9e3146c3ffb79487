"""Progressive growing (the 2019 StyleGAN and the StyleGAN2 paper's configs A-D) on the shared Trainer.

The level of detail (lod) follows the official schedule of images shown: each level trains for
`training_kimg`, then the next one fades in over `transition_kimg`, with the level's own batch size
and learning rate where the schedule names them (the official minibatch and lrate dicts). Every
level is a `Trainer` of networks built up to that level (`level_resolution`), so each level
compiles once; within a level the fade is the traced 'lod' buffer of G and D, which the state (and
so every checkpoint) holds. Real images arrive at full resolution and are reduced on the device to
the level, as the official dataset's lower levels and its fade between them.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.images import short_side
from stylegan_jax.networks.stylegan2 import block_resolutions
from stylegan_jax.ops.progressive import downscale_box, level_lod, upscale_nearest
from stylegan_jax.train_state import TrainState
from stylegan_jax.training import draws as draws_lib
from stylegan_jax.training.trainer import LossConfig, OptimizerConfig, Trainer, to_float_images


@dataclasses.dataclass(frozen=True)
class GrowthSchedule:
    """The official level-of-detail schedule (training_schedule of the 2019 code)."""

    full_resolution: int
    initial_resolution: int = 8
    training_kimg: float = 600.0
    transition_kimg: float = 600.0
    lr_by_resolution: tuple[tuple[int, float], ...] = ()  # the official G_lrate_dict / D_lrate_dict
    batch_by_resolution: tuple[tuple[int, int], ...] = ()  # the official minibatch_dict (minibatch_size_dict)

    def __post_init__(self):
        if not 4 <= self.initial_resolution <= self.full_resolution or \
                self.initial_resolution & (self.initial_resolution - 1):
            raise ValueError(f"the initial resolution must be a power of two from 4 to {self.full_resolution}, "
                             f"got {self.initial_resolution}")

    def lod(self, nimg: int) -> float:
        """The level of detail after `nimg` images: 0 is full resolution, fractions fade."""
        kimg = nimg / 1000
        period = self.training_kimg + self.transition_kimg
        index = math.floor(kimg / period) if period > 0 else 0
        lod = math.log2(self.full_resolution) - math.log2(self.initial_resolution) - index
        if self.transition_kimg > 0:
            lod -= max(kimg - index * period - self.training_kimg, 0.0) / self.transition_kimg
        return max(lod, 0.0)

    def level(self, lod: float) -> int:
        """The resolution a step at `lod` trains (the higher one during a fade)."""
        return self.full_resolution >> math.floor(lod)

    def batch_size(self, level: int, base: int) -> int:
        """The images per iteration at `level`: the schedule's entry for it, else `base`."""
        return dict(self.batch_by_resolution).get(level, base)

    @property
    def resolutions(self) -> list[int]:
        """Every level, from the initial resolution up."""
        return [res for res in block_resolutions(self.full_resolution) if res >= self.initial_resolution]


def _with_lod(variables: dict, lod: jax.Array) -> dict:
    """`variables` with every buffer named 'lod' set to `lod`."""
    def replace(tree):
        return {key: lod if key == "lod" else replace(value) if hasattr(value, "items") else value
                for key, value in tree.items()}

    return {**variables, "buffers": replace(variables["buffers"])}


class _LevelTrainer(Trainer):
    """The phases at one level: networks up to `level` pixels, the level's batch size, reals reduced
    and faded to it."""

    def __init__(self, G: nn.Module, D: nn.Module, loss: LossConfig, optim: OptimizerConfig, batch_size: int, *,
                 growth: GrowthSchedule, level: int, **kwargs):
        self.growth, self.level = growth, level
        super().__init__(G.clone(level_resolution=level), D.clone(level_resolution=level), loss, optim,
                         growth.batch_size(level, batch_size), **kwargs)

    def _prepare_reals(self, state: TrainState, real_img: jax.Array) -> jax.Array:
        """The official reals at this level: box-reduced and rounded (the dataset's lower levels),
        in [-1, 1], then blended with their 2x coarser copy by the lod's fraction (the fade)."""
        factor = short_side(self.G.img_resolution) // self.level
        x = real_img.astype(jnp.float32)
        if factor > 1:
            x = jnp.clip(jnp.rint(downscale_box(x, factor)), 0, 255)
        x = to_float_images(x)
        fade = state.d["buffers"]["lod"] - level_lod(self.level, self.growth.full_resolution)
        return x + (upscale_nearest(downscale_box(x)) - x) * fade

    def _sample_g_call(self, key, batch):
        """As the official style mixing at a level: the cutoff is drawn among the layers in use."""
        layers = 2 * len(block_resolutions(self.level))
        return draws_lib.sample_g_call(key, batch, self.G.z_dim, layers, self.loss.style_mixing_prob > 0,
                                       self.noise_layers)

    def hyperparameters(self, nimg: int) -> dict[str, np.float32]:
        """This level's learning rates, if the schedule names one (with the lazy-regularisation ratio)."""
        del nimg
        lr = dict(self.growth.lr_by_resolution).get(self.level)
        if lr is None:
            return {}
        return {"g_lr": np.float32(lr * self.g_tx.lr / self.optim.g_lr),
                "d_lr": np.float32(lr * self.d_tx.lr / self.optim.d_lr)}


class ProgressiveTrainer(_LevelTrainer):
    """Trains G and D with progressive growing; is itself the full-resolution level and runs each
    step on the level the schedule gives, resetting Adam when a fade starts or ends (official).
    `batch_size` is the batch of the levels the schedule gives none (the official minibatch base)."""

    def __init__(self, G: nn.Module, D: nn.Module, loss: LossConfig, optim: OptimizerConfig, batch_size: int, *,
                 growth: GrowthSchedule, reset_optimizer: bool = True, **kwargs):
        super().__init__(G, D, loss, optim, batch_size, growth=growth, level=growth.full_resolution, **kwargs)
        self._level_args = (G, D, (loss, optim, batch_size), kwargs)
        self.levels: dict[int, _LevelTrainer] = {growth.full_resolution: self}
        self.reset_optimizer = reset_optimizer
        self._previous_lod = -1.0  # as the official loop: Adam is reset at the first step of a run
        jit = lambda fn: jax.jit(fn, donate_argnums=0, out_shardings=self.replicated)
        self._set_lod = jit(lambda state, lod: state.replace(
            g=_with_lod(state.g, lod), g_ema=_with_lod(state.g_ema, lod), d=_with_lod(state.d, lod)))
        self._reset_adam = jit(lambda state: state.replace(g_opt=self.g_tx.init(state.g["params"]),
                                                           d_opt=self.d_tx.init(state.d["params"])))

    def level_trainer(self, level: int) -> _LevelTrainer:
        """The trainer of one level, built on first use."""
        if level not in self.levels:
            G, D, args, kwargs = self._level_args
            self.levels[level] = _LevelTrainer(G, D, *args, growth=self.growth, level=level, **kwargs)
        return self.levels[level]

    def step_batch_size(self, nimg: int) -> int:
        """The batch size of the level the schedule trains at `nimg` images."""
        return self.level_trainer(self.growth.level(self.growth.lod(nimg))).batch_size

    def compile_phases(self, state: TrainState, image_shape: tuple[int, int, int], c_dim: int) -> None:
        """Compiles the phases of every level (multi-host runs compile before the first step)."""
        for level in self.growth.resolutions:
            Trainer.compile_phases(self.level_trainer(level), state, image_shape, c_dim)

    def train_step(self, state: TrainState, step: int, nimg: int, *args, **kwargs) -> tuple[TrainState, dict[str, Any]]:
        """One iteration at the schedule's level of detail for `nimg` (see Trainer.train_step)."""
        lod = self.growth.lod(nimg)
        if self.reset_optimizer and (math.floor(lod) != math.floor(self._previous_lod)
                                     or math.ceil(lod) != math.ceil(self._previous_lod)):
            state = self._reset_adam(state)
        self._previous_lod = lod
        state = self._set_lod(state, jnp.float32(lod))
        trainer = self.level_trainer(self.growth.level(lod))
        state, metrics = Trainer.train_step(trainer, state, step, nimg, *args, **kwargs)
        return state, {**metrics, "progress/lod": np.float32(lod)}
