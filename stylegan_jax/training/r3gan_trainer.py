"""R3GAN's training iteration on the shared Trainer: a D phase, then a G phase, each on its own real batch.

As the official loop: every iteration draws two real batches and two latent batches; D trains on
the first with the relativistic pairing loss plus R1 and R2 (no lazy regularisation), then G on the
second with the relativistic loss, generated sample n paired with real sample n and conditioned on
its label. Learning rate, Adam's beta2, gamma, the augmentation probability and the EMA length
follow the cosine schedules of `r3gan_schedule` at the image count before the step.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from jax.sharding import Mesh

from stylegan_jax.train_state import TrainState
from stylegan_jax.training import r3gan_loss
from stylegan_jax.training.ada import AugmentConfig
from stylegan_jax.training.adam import Adam
from stylegan_jax.training.r3gan_schedule import R3GANSchedules, ema_beta
from stylegan_jax.training.rotation_loss import RotationConfig
from stylegan_jax.training.trainer import OptimizerConfig, Phase, Trainer


class R3GANTrainer(Trainer):
    """The shared Trainer with R3GAN's phases, loss, optimiser settings and schedules."""

    def __init__(self, G: nn.Module, D: nn.Module, schedules: R3GANSchedules, optim: OptimizerConfig,
                 batch_size: int, mesh: Mesh | None = None, augment: AugmentConfig | None = None,
                 freeze_d: int = 0, rotation: RotationConfig | None = None):
        self.schedules, self._rotation = schedules, rotation or RotationConfig()
        super().__init__(G, D, None, optim, batch_size, mesh=mesh, augment=augment, freeze_d=freeze_d)

    @property
    def rotation(self) -> RotationConfig:
        """The SS-GAN rotation loss's settings (R3GAN has no LossConfig to hold them)."""
        return self._rotation

    def _make_phases(self) -> list[Phase]:
        return [Phase("D", "D", main=True, reg=True, interval=1, data_batch=0),
                Phase("G", "G", main=True, reg=False, interval=1, data_batch=1)]

    def _optimizers(self, d_trainable) -> tuple[Adam, Adam]:
        """Plain Adam; lr and beta2 come from the schedules at every step."""
        o = self.optim
        return Adam(o.g_lr, o.beta1, o.beta2, o.eps), Adam(o.d_lr, o.beta1, o.beta2, o.eps, d_trainable)

    def hyperparameters(self, nimg: int) -> dict[str, np.float32]:
        """lr, beta2, gamma and the augmentation probability after `nimg` training images."""
        s = self.schedules
        return {name: np.float32(getattr(s, name)(nimg)) for name in ("lr", "beta2", "gamma", "aug_p")}

    def ema_decay(self, nimg: int, ema_kimg: float, ema_rampup: float | None) -> float:
        """The official decay: half-life of the scheduled EMA length (ema_kimg and ramp-up unused)."""
        del ema_kimg, ema_rampup
        return ema_beta(self.batch_size, self.schedules.ema_nimg(nimg))

    def sample_draws(self, key: jax.Array, phase: Phase, batch: int) -> dict[str, Any]:
        """The phase's latents and the augmentation draws of its real and generated images."""
        k_z, k_real, k_fake = jax.random.split(key, 3)
        return {"main": dict(z=jax.random.normal(k_z, (batch, self.G.z_dim)),
                             aug_real=self._sample_augment(k_real, batch),
                             aug_fake=self._sample_augment(k_fake, batch))}

    def _run_phase(self, state: TrainState, phase: Phase, hyper, real_img, real_c, gen_c, draws):
        """The shared phase, with the state's augmentation probability set to the schedule's."""
        return super()._run_phase(state.replace(augment_p=hyper["aug_p"]), phase, hyper, real_img, real_c, gen_c,
                                  draws)

    def _critics(self, d_vars, state: TrainState, real_c, draws) -> tuple[r3gan_loss.Critic, ...]:
        """D on real and on generated images, each through its own augmentation draws."""
        score = lambda aug: lambda x: self._run_d(d_vars, x, real_c, state.nimg, state.augment_p, aug)
        return score(draws["aug_real"]), score(draws["aug_fake"])

    def _loss_inputs(self, state, phase: Phase, real_img, real_c, gen_c, draws):
        """For the D phase, the generated images (constants of D's loss), conditioned on the real labels."""
        if phase.net == "G":
            return state.g, None
        fake = self.G.apply(state.g, draws["main"]["z"], real_c)
        return state.g, jax.lax.stop_gradient(fake)

    def _d_loss(self, d_params, state: TrainState, phase: Phase, hyper, real_img, real_c, gen_c, draws, fake):
        """The relativistic loss of reals over their paired fakes, plus gamma/2 (R1 + R2) and the rotation term."""
        del phase, gen_c
        d_vars = {**state.d, "params": d_params}
        score_real, score_fake = self._critics(d_vars, state, real_c, draws["main"])
        loss, terms = r3gan_loss.discriminator_loss(score_real, score_fake, real_img, fake, hyper["gamma"])
        rotation, rotation_aux = self._rotation_term("real", d_vars, real_img, real_c, state.nimg, state.augment_p,
                                                     draws["main"]["aug_real"])
        return loss + rotation, {"loss/D": jnp.mean(terms.adversarial), "loss/r1_penalty": jnp.mean(terms.r1),
                                 "loss/r2_penalty": jnp.mean(terms.r2),
                                 "scores/real": jnp.mean(terms.relativistic_logits), **rotation_aux}

    def _g_loss(self, g_params, state: TrainState, phase: Phase, hyper, real_img, real_c, gen_c, draws, fake):
        """The relativistic loss of fakes over their paired reals (the real logits are constants), plus the
        rotation term."""
        del phase, gen_c, fake
        d = draws["main"]
        fake = self.G.apply({**state.g, "params": g_params}, d["z"], real_c)
        score_real, score_fake = self._critics(state.d, state, real_c, d)
        loss, terms = r3gan_loss.generator_loss(score_real, score_fake, real_img, fake)
        rotation, rotation_aux = self._rotation_term("fake", state.d, fake, real_c, state.nimg, state.augment_p,
                                                     d["aug_fake"])
        return loss + rotation, {"loss/G": loss, "scores/fake": jnp.mean(terms.relativistic_logits), **rotation_aux}
