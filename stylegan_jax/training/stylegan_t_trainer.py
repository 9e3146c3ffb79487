"""StyleGAN-T's training on the shared Trainer: captions through a frozen CLIP text tower, the hinge loss
through the DINO discriminator, and optional CLIP guidance.

As the official StyleGAN-T loop and ProjectedGANLoss:
- every iteration runs D's phase, then G's (interval 1, no regularisation, plain Adam);
- a phase embeds the batch's captions (CLIP token ids in the labels) with the frozen text tower and scales
  the embedding to unit length; it conditions both D and the fakes, whose captions are the real batch's;
- hinge losses as StyleGAN-XL's ProjectedTrainer (a mean over the batch: the official extra 1/batch_gpu
  is a constant factor that Adam ignores up to its epsilon); one spectral-norm power iteration per D call;
- G's loss adds `clip_weight` x the squared spherical distance between the CLIP image embedding of its
  images (one random 64x64 crop above 64 px) and their captions' embedding (perceptual.clip_guidance);
- StyleGAN3's blur of D's inputs (loss.blur_init_sigma, loss.blur_fade_kimg);
- G's mapping updates x_avg on every G call, in both phases (the official G trains in training mode).
The frozen weights live in D's 'frozen' collection: the DINO ViT at `dino/net` (the discriminator's own
slot), the towers at `clip_text` and `clip_image`. Without a weights file they are random, which only
shows that the pipeline trains.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax.sharding import Mesh

from stylegan_jax.networks import feature_nets
from stylegan_jax.networks.stylegan_t_d import INPUT_SIZE, load_dino_variables
from stylegan_jax.perceptual import clip_image, clip_text
from stylegan_jax.perceptual.clip_guidance import clip_guidance_loss
from stylegan_jax.sampling.prompts import PromptEncoder, embed_tokens
from stylegan_jax.train_state import TrainState
from stylegan_jax.training.projected_trainer import ProjectedTrainer, hinge_g_loss
from stylegan_jax.training.trainer import LossConfig, OptimizerConfig, Phase, Trainer, kept_collection

class TextTowers(NamedTuple):
    """The frozen networks around StyleGAN-T: CLIP's text tower (and its image tower, for guidance when
    `clip_weight` > 0) from `clip_weights`, DINO from `dino_weights`; '' = random weights."""

    text: clip_text.CLIPTextConfig
    image: clip_image.CLIPImageConfig
    clip_weights: str
    dino_weights: str
    clip_weight: float


def text_towers(preset: str, sizes: tuple[int, ...], clip_weights: str, dino_weights: str,
                clip_weight: float) -> TextTowers:
    """The towers of a CLIP preset, or of (width, heads, layers, embed_dim) `sizes` (image: 32-px patches)."""
    return TextTowers(clip_text.text_config(preset, sizes), clip_image.image_config(preset, sizes), clip_weights,
                      dino_weights, clip_weight)


class StyleGANTTrainer(ProjectedTrainer):
    """The shared Trainer with StyleGAN-T's phases, text conditioning and losses."""

    def __init__(self, G: nn.Module, D: nn.Module, loss: LossConfig, optim: OptimizerConfig, batch_size: int,
                 towers: TextTowers, mesh: Mesh | None = None, augment=None, freeze_d: int = 0):
        self.towers = towers
        self.text_tower = clip_text.CLIPTextTower(towers.text)
        self.image_tower = clip_image.CLIPImageTower(towers.image)
        if G.c_dim and G.c_dim != towers.text.embed_dim:
            raise ValueError(f"G takes text embeddings of {G.c_dim} values but the CLIP text tower gives "
                             f"{towers.text.embed_dim}")
        if towers.clip_weight and not G.c_dim:
            raise ValueError("CLIP guidance needs a text-conditional generator (captions)")
        super().__init__(G, D, loss, optim, batch_size, mesh=mesh, augment=augment, freeze_d=freeze_d,
                         pl_start_nimg=0)
        self._embed = jax.jit(self.embed_captions, out_shardings=self.replicated)

    def _make_phases(self) -> list[Phase]:
        return [Phase("Dmain", "D", True, False, 1), Phase("Gmain", "G", True, False, 1)]

    def init_state(self, seed: int) -> TrainState:
        """Fresh networks; the frozen DINO and CLIP towers read from their files (or random from `seed`)."""
        state = Trainer.init_state(self, seed)
        keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), 1 << 20), 3)
        t = self.towers
        if t.dino_weights:
            dino = load_dino_variables(t.dino_weights, self.D.backbone)
        else:
            dino = feature_nets.module_for(self.D.backbone).init(keys[0], jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3)))
        frozen = dict(state.d["frozen"])
        frozen["dino"] = {**frozen["dino"], "net": dino}
        if self.G.c_dim:
            frozen["clip_text"] = self._tower_params(self.text_tower, clip_text.load_clip_text, t.text, keys[1],
                                                     jnp.zeros((1, t.text.context_length), jnp.int32))
        if t.clip_weight:
            size = t.image.image_size
            frozen["clip_image"] = self._tower_params(self.image_tower, clip_image.load_clip_image, t.image, keys[2],
                                                      jnp.zeros((1, size, size, 3)))
        return state.replace(d={**state.d, "frozen": jax.device_put(frozen, self.replicated)})

    def _tower_params(self, module: nn.Module, load, config, key: jax.Array, example: jax.Array) -> dict:
        if self.towers.clip_weights:
            return load(self.towers.clip_weights, config)[1]["params"]
        return jax.jit(module.init)(key, example)["params"]

    def embed_captions(self, d_vars: dict, labels: jax.Array) -> jax.Array:
        """Unit-length CLIP text embeddings [N, embed_dim] of the token ids in `labels` (as they are
        without text conditioning)."""
        if not self.G.c_dim:
            return labels
        return embed_tokens(self.text_tower, jax.lax.stop_gradient(d_vars["frozen"]["clip_text"]), labels)

    def generator_conditioning(self, state: TrainState, labels: Any) -> jax.Array:
        """G's c for dataset labels: the embedding of the captions they hold."""
        return self._embed(state.d, jnp.asarray(labels))

    def prompt_encoder(self, state: TrainState) -> PromptEncoder | None:
        """The frozen text tower with its weights, for caption-conditioned metrics (None without captions)."""
        if not self.G.c_dim:
            return None
        return PromptEncoder(self.text_tower, jax.device_get(state.d["frozen"]["clip_text"]))

    def sample_draws(self, key: jax.Array, phase: Phase, batch: int) -> dict[str, Any]:
        """The projected trainer's draws plus the CLIP guidance crop of G's phase."""
        out = super().sample_draws(key, phase, batch)
        if phase.net == "G" and self.towers.clip_weight:
            out["main"]["clip_crop"] = jax.random.fold_in(key, 101)
        return out

    def _g_loss(self, g_params, state: TrainState, phase: Phase, hyper, real_img, real_c, gen_c, draws, fake):
        """The hinge loss through D plus CLIP guidance; also returns the mapping's updated x_avg."""
        del phase, hyper, real_img, real_c, fake
        d = draws["main"]
        img, _, g_vars = self._run_g({**state.g, "params": g_params}, d["z"], gen_c, d["g"], update_emas=True)
        logits, spectral = self._discriminate(state.d, img, gen_c, state, d["aug_fake"], d["diffaug_fake"])
        total = adversarial = hinge_g_loss(logits)
        aux = {"loss/G": adversarial, "scores/fake_G": jnp.mean(jnp.concatenate(logits, axis=1)),
               "spectral": spectral, "g_buffers": g_vars["buffers"]}
        if self.towers.clip_weight:
            weights = jax.lax.stop_gradient(state.d["frozen"]["clip_image"])
            guidance = clip_guidance_loss(lambda x: self.image_tower.apply({"params": weights}, x), img, gen_c,
                                          d["clip_crop"])
            total = total + self.towers.clip_weight * guidance
            aux["loss/G_clip"] = guidance
        return total, aux

    def _run_phase(self, state: TrainState, phase: Phase, hyper, real_img, real_c, gen_c, draws):
        """The projected trainer's phase on the embedded captions of the real batch (for reals and fakes)."""
        del gen_c
        text = self.embed_captions(state.d, real_c)
        state, metrics = super()._run_phase(state, phase, hyper, real_img, text, text, draws)
        buffers = metrics.pop("g_buffers", None)
        if buffers is not None:
            state = kept_collection(state, metrics[f"finite/{phase.name}"], "g", "buffers", buffers)
        return state, metrics
