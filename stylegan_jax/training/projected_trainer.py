"""StyleGAN-XL's ProjectedGANLoss on the shared Trainer: hinge loss through a projected discriminator.

As the official loss: D minimises relu(1 + fake logits) + relu(1 - real logits), G minimises
-(fake logits), summed over the backbones, each averaged over its patch logits; no R1 (the official
Dreg phase does nothing, but the lazy-regularisation correction of D's Adam stays); the StyleGAN3
blur of D's inputs; the D phase's G call updates the mapping's w_avg but not the synthesis EMAs; path-length regularisation only from `pl_start_nimg` images on; optional
classifier guidance (G's cross-entropy of a frozen classifier on its images, `guidance`).
Each D call runs one power iteration of spectral norm whose vectors are stored back (fakes, then reals,
then the G phase, as the official calls follow each other). The official sum over a GPU's samples of
each sample's mean is a mean over the batch here: Adam makes the scale immaterial up to its epsilon.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax.sharding import Mesh

from stylegan_jax.networks import feature_nets, projected
from stylegan_jax.ops.resize import bilinear_resize
from stylegan_jax.train_state import TrainState
from stylegan_jax.training.ada import AugmentConfig
from stylegan_jax.training.trainer import LossConfig, OptimizerConfig, Phase, Trainer, kept_collection, make_phases

GUIDANCE_KEY = "guidance_classifier"  # where the classifier's weights live: the 'frozen' collection of D's variables


class Guidance(NamedTuple):
    """Classifier guidance (StyleGAN-XL's cls_weight/cls_model): `weight` x the cross-entropy of a frozen timm
    ViT/DeiT classifier (weights file `path`) on G's images against the classes G was asked for."""

    arch: str
    path: str
    weight: float


def guidance_loss(logits_fn: Callable[[dict, jax.Array], jax.Array], weights: dict, images: jax.Array,
                  labels: jax.Array, normalization) -> jax.Array:
    """Mean cross-entropy of the classifier on [-1, 1] images (to [0, 1], normalised, resized to 224 bilinearly)
    against argmax(labels)."""
    mean, std = (jnp.asarray(v, jnp.float32) for v in normalization)
    x = (images + 1) / 2
    if x.shape[-1] == 1:
        x = jnp.repeat(x, 3, axis=-1)
    x = bilinear_resize((x - mean) / std, 224, 224, align_corners=False)
    log_probs = jax.nn.log_softmax(logits_fn(weights, x), axis=-1)
    return -jnp.mean(jnp.take_along_axis(log_probs, jnp.argmax(labels, axis=1)[:, None], axis=1))


def hinge_d_loss(real_logits: list[jax.Array], fake_logits: list[jax.Array]) -> jax.Array:
    """sum over backbones of mean(relu(1 - real)) + mean(relu(1 + fake))."""
    return sum(jnp.mean(jax.nn.relu(1 - r)) + jnp.mean(jax.nn.relu(1 + f)) for r, f in zip(real_logits, fake_logits))


def hinge_g_loss(fake_logits: list[jax.Array]) -> jax.Array:
    """sum over backbones of mean(-fake)."""
    return sum(jnp.mean(-f) for f in fake_logits)


class ProjectedTrainer(Trainer):
    """The shared Trainer with StyleGAN-XL's projected-discriminator loss."""

    update_synthesis_emas = False  # official: the D phase updates w_avg only ("enabling emas leads to collapse")

    def __init__(self, G: nn.Module, D: nn.Module, loss: LossConfig, optim: OptimizerConfig, batch_size: int,
                 mesh: Mesh | None = None, augment: AugmentConfig | None = None, freeze_d: int = 0,
                 pl_start_nimg: int = 1_000_000, guidance: Guidance | None = None,
                 g_trainable: Callable[[tuple[str, ...]], bool] | None = None):
        if freeze_d:
            raise ValueError("freeze_d must be 0 with a projected discriminator (its backbones are frozen already)")
        if loss.rotation.active:
            raise ValueError("the rotation loss needs a StyleGAN discriminator, not a projected one")
        self.pl_start_nimg, self.guidance = pl_start_nimg, guidance
        if guidance is not None:
            if not G.c_dim:
                raise ValueError("classifier guidance needs a conditional generator (labels)")
            self._classifier = feature_nets.classifier_logits_fn(guidance.arch)
        self._host_nimg = 0
        super().__init__(G, D, loss, optim, batch_size, mesh=mesh, augment=augment, g_trainable=g_trainable)

    def _make_phases(self) -> list[Phase]:
        return make_phases(dataclasses.replace(self.loss, r1_gamma=0.0))

    def init_state(self, seed: int) -> TrainState:
        """Fresh networks, with every backbone's pretrained weights read from its file."""
        state = super().init_state(seed)
        frozen = dict(state.d["frozen"])
        weights = tuple(self.D.backbone_weights) or ("",) * len(self.D.backbones)
        for backbone, path in zip(self.D.backbones, weights):
            tag = f"{backbone.replace('.', '_')}_net"
            variables = projected.load_backbone_variables(backbone, path)
            frozen[tag] = {**frozen[tag], "net": jax.device_put(variables, self.replicated)}
        if self.guidance is not None:
            _, weights = feature_nets.load_timm_classifier(self.guidance.arch, self.guidance.path)
            frozen[GUIDANCE_KEY] = jax.device_put(weights, self.replicated)
        return state.replace(d={**state.d, "frozen": frozen})

    def sample_draws(self, key: jax.Array, phase: Phase, batch: int) -> dict[str, Any]:
        """The shared draws plus one DiffAugment key per D call."""
        out = super().sample_draws(key, phase, batch)
        if phase.main:
            k_fake, k_real = jax.random.split(jax.random.fold_in(key, 99))
            out["main"]["diffaug_fake"] = k_fake
            if phase.net == "D":
                out["main"]["diffaug_real"] = k_real
        return out

    def _phases_run(self, step: int) -> list[Phase]:
        """The shared rule, without the path-length phase before `pl_start_nimg` (official: it does nothing)."""
        phases = super()._phases_run(step)
        if self._host_nimg < self.pl_start_nimg:
            phases = [p for p in phases if p.main]
        return phases

    def train_step(self, state: TrainState, step: int, nimg: int, *args, **kwargs):
        """The shared iteration; `nimg` also decides whether path-length regularisation has started."""
        self._host_nimg = nimg
        return super().train_step(state, step, nimg, *args, **kwargs)

    def _discriminate(self, d_vars, img, c, state: TrainState, aug_draws, key) -> tuple[list[jax.Array], Any]:
        """D's logits per backbone (a list, also for a D that returns one array) after the blur (and any
        augmentation), and its updated spectral vectors."""
        img = self._d_view(img, state.nimg, state.augment_p, aug_draws)
        logits, updates = self.D.apply(d_vars, img, c, rngs={"diffaug": key}, mutable=["spectral"])
        return (logits if isinstance(logits, list) else [logits]), updates["spectral"]

    def _g_loss(self, g_params, state: TrainState, phase: Phase, hyper, real_img, real_c, gen_c, draws, fake):
        """Gmain (hinge through D, plus classifier guidance) and/or Greg (path length)."""
        del hyper, real_img, real_c, fake
        g_vars = {**state.g, "params": g_params}
        total, aux = 0.0, {}
        if phase.main:
            d = draws["main"]
            img, _, _ = self._run_g(g_vars, d["z"], gen_c, d["g"])
            logits, spectral = self._discriminate(state.d, img, gen_c, state, d["aug_fake"], d["diffaug_fake"])
            adversarial = hinge_g_loss(logits)
            total = total + adversarial
            aux.update({"loss/G": adversarial, "scores/fake_G": jnp.mean(jnp.concatenate(logits, axis=1)),
                        "spectral": spectral})
            if self.guidance is not None:
                guidance = guidance_loss(self._classifier, state.d["frozen"][GUIDANCE_KEY], img, gen_c,
                                         feature_nets.projection_spec(self.guidance.arch).normalization)
                total = total + self.guidance.weight * guidance
                aux["loss/G_guidance"] = guidance
        if phase.reg:  # no gain: the official ProjectedGANLoss ignores it
            term, pl_aux = self._path_length_term(g_vars, state, gen_c, draws["reg"])
            total, aux = total + term, {**aux, **pl_aux}
        return total, aux

    def _d_loss(self, d_params, state: TrainState, phase: Phase, hyper, real_img, real_c, gen_c, draws, fake):
        """Dmain: hinge on the fakes, then on the reals (spectral vectors updated by each call in turn)."""
        del hyper, phase
        d = draws["main"]
        d_vars = {**state.d, "params": d_params}
        fake_logits, spectral = self._discriminate(d_vars, fake, gen_c, state, d["aug_fake"], d["diffaug_fake"])
        d_vars = {**d_vars, "spectral": spectral}
        real_logits, spectral = self._discriminate(d_vars, real_img, real_c, state, d["aug_real"], d["diffaug_real"])
        loss = hinge_d_loss(real_logits, fake_logits)
        real_all = jnp.concatenate(real_logits, axis=1)
        return loss, {"loss/D": loss, "scores/fake": jnp.mean(jnp.concatenate(fake_logits, axis=1)),
                      "scores/real": jnp.mean(real_all), "signs/real_sum": jnp.sum(jnp.sign(jnp.mean(real_all, axis=1))),
                      "spectral": spectral}

    def _run_phase(self, state: TrainState, phase: Phase, hyper, real_img, real_c, gen_c, draws):
        """The shared phase; then D's spectral vectors from this phase's calls (kept when the step is)."""
        state, metrics = super()._run_phase(state, phase, hyper, real_img, real_c, gen_c, draws)
        spectral = metrics.pop("spectral", None)
        if spectral is not None:
            state = kept_collection(state, metrics[f"finite/{phase.name}"], "d", "spectral", spectral)
        return state, metrics
