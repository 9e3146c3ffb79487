"""The training phases of StyleGAN2/3 (Gmain/Greg or Gboth, Dmain/Dreg or Dboth, EMA) as jitted, sharded steps.

Every phase is a pure function of (state, batch, draws) compiled once with the batch sharded over
the 'data' axis of a device mesh and everything else replicated, so XLA inserts the gradient
all-reduces and the result does not depend on the number of devices. The draws (latents, mixing,
noise, path-length noise, augmentation) come from the state's key, or from outside to replay an
official run (see `draws.py`).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from stylegan_jax.augment import augment_from_draws, draw_random
from stylegan_jax.train_state import TrainState
from stylegan_jax.training import draws as draws_lib
from stylegan_jax.training import losses, rotation_loss
from stylegan_jax.training.ada import AugmentConfig, adjust_p, no_augmentation
from stylegan_jax.training.adam import Adam, lazy_adam
from stylegan_jax.training.connectivity import value_grad_and_reached
from stylegan_jax.training.rotation_loss import ROTATIONS, RotationConfig

NONFINITE_RULES = ("skip", "official")


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Loss and regularisation settings (official names; the defaults live in training/config.py).

    A regularisation interval of 0 runs that network's main and regularisation terms together in
    one phase every iteration (the official Gboth/Dboth, e.g. StyleGAN3's G). `rotation` (the
    SS-GAN rotation loss of the main phases) also takes a mapping of its fields, e.g. config.loss.rotation.
    """

    r1_gamma: float
    pl_weight: float
    pl_batch_shrink: int
    pl_decay: float
    style_mixing_prob: float
    blur_init_sigma: float
    blur_fade_kimg: float
    g_reg_interval: int
    d_reg_interval: int
    rotation: RotationConfig = RotationConfig()

    def __post_init__(self):
        if not isinstance(self.rotation, RotationConfig):
            object.__setattr__(self, "rotation", RotationConfig(**dict(self.rotation)))


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Adam settings of G and D, and what a NaN/Inf gradient does: 'skip' the update or 'official'
    (replace NaN by 0 and +-Inf by +-1e5, then step, as the official loop); the defaults live in
    training/config.py."""

    g_lr: float
    d_lr: float
    beta1: float
    beta2: float
    eps: float
    nonfinite_grads: str


@dataclasses.dataclass(frozen=True)
class Phase:
    """One official phase: which network, which loss terms, how often, and the gradient gain."""

    name: str
    net: str
    main: bool
    reg: bool
    interval: int
    data_batch: int = 0  # which of the iteration's real batches it trains on (R3GAN's G and D take one each)


def make_phases(loss: LossConfig) -> list[Phase]:
    """The official phase list: Gmain/Greg or Gboth, then Dmain/Dreg or Dboth."""
    phases = []
    for net, interval, reg_on in (("G", loss.g_reg_interval, loss.pl_weight != 0),
                                  ("D", loss.d_reg_interval, loss.r1_gamma != 0)):
        if interval:
            phases += [Phase(f"{net}main", net, True, False, 1), Phase(f"{net}reg", net, False, reg_on, interval)]
        else:
            phases.append(Phase(f"{net}both", net, True, reg_on, 1))
    return phases


def ema_beta(batch_size: int, cur_nimg: int, ema_kimg: float, ema_rampup: float | None) -> float:
    """The official G EMA decay for one step: half-life ema_kimg, ramped up over the first images."""
    ema_nimg = ema_kimg * 1000
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
    return 0.5 ** (batch_size / max(ema_nimg, 1e-8))


def to_float_images(images: jax.Array) -> jax.Array:
    """uint8 images in [0, 255] -> float32 in [-1, 1], like the official training loop."""
    return images.astype(jnp.float32) / 127.5 - 1


def frozen_d_layers(d_params: dict, freeze_layers: int) -> set[tuple[str, str]]:
    """(block, layer) of the first `freeze_layers` discriminator layers in the official order
    (blocks from the highest resolution down; fromrgb, conv0, conv1, skip within a block)."""
    order = sorted((name for name in d_params if name.startswith("b") and name[1:].isdigit() and name != "b4"),
                   key=lambda name: -int(name[1:]))
    layers = [(block, layer) for block in order for layer in ("fromrgb", "conv0", "conv1", "skip")
              if layer in d_params[block]]
    return set(layers[:freeze_layers])


def _all_finite(*trees) -> jax.Array:
    leaves = [x for t in trees for x in jax.tree_util.tree_leaves(t)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _select(ok, new, old):
    return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)


def kept_collection(state: TrainState, ok: jax.Array, net: str, collection: str, new: Any) -> TrainState:
    """`state` with `new` as the variable collection `collection` of `net` ('g' or 'd') where the phase's
    update was kept (`ok`), unchanged otherwise."""
    variables = getattr(state, net)
    return state.replace(**{net: {**variables, collection: _select(ok, new, variables[collection])}})


def _clean_gradients(grads):
    """The official rule: NaN -> 0, +-Inf -> +-1e5."""
    return jax.tree_util.tree_map(lambda g: jnp.nan_to_num(g, nan=0.0, posinf=1e5, neginf=-1e5), grads)


class Trainer:
    """Compiles and runs the training phases of one (G, D) pair on a device mesh.

    This class trains StyleGAN2/3; another family subclasses it and replaces the hooks (the phase
    list, optimisers, draws, losses, scheduled hyper-parameters and EMA decay) while the state,
    sharding, Adam application, NaN handling, EMA and compilation stay shared.
    """

    update_synthesis_emas = True  # the D phase's G call also updates the synthesis EMAs (StyleGAN3's magnitude)

    def __init__(self, G: nn.Module, D: nn.Module, loss: LossConfig | None, optim: OptimizerConfig,
                 batch_size: int, mesh: Mesh | None = None, augment: AugmentConfig | None = None,
                 freeze_d: int = 0, g_trainable: Callable[[tuple[str, ...]], bool] | None = None):
        if optim.nonfinite_grads not in NONFINITE_RULES:
            raise ValueError(f"nonfinite_grads must be one of {NONFINITE_RULES}, got {optim.nonfinite_grads!r}")
        self.G, self.D, self.loss, self.optim, self.batch_size = G, D, loss, optim, batch_size
        self.g_trainable = g_trainable  # which G parameters (by path) Adam updates; None: all
        self.augment = augment or no_augmentation()
        self.mesh = mesh or Mesh(np.array(jax.devices()), ("data",))
        if batch_size % self.mesh.size:
            raise ValueError(f"batch_size {batch_size} is not divisible by the {self.mesh.size} devices")
        self.replicated = NamedSharding(self.mesh, P())
        self.batch_sharding = NamedSharding(self.mesh, P("data"))
        self.phases = self._make_phases()
        self.image_shape = tuple(D.example_inputs()[0].shape[1:3])  # (height, width) that G makes and D takes
        d_abstract = jax.eval_shape(lambda: D.init({"params": jax.random.key(0)}, *D.example_inputs()))
        self.frozen_d = frozen_d_layers(d_abstract["params"], freeze_d)
        if len(self.frozen_d) < freeze_d:
            raise ValueError(f"freeze_d={freeze_d} but the discriminator has only {len(self.frozen_d)} "
                             "freezable layers")
        d_trainable = (lambda path: tuple(path[:2]) not in self.frozen_d) if self.frozen_d else None
        self.g_tx, self.d_tx = self._optimizers(d_trainable)
        self._check_rotation()
        self.max_blur_sigma = loss.blur_init_sigma if loss is not None and loss.blur_fade_kimg > 0 else 0.0
        g_abstract = jax.eval_shape(lambda: G.init({"params": jax.random.key(0), "noise": jax.random.key(1)},
                                                   *G.example_inputs()))
        self.noise_layers = draws_lib.noise_layers(g_abstract.get("buffers", {}))
        jit = lambda fn: jax.jit(fn, donate_argnums=0, out_shardings=self.replicated)
        self.phase_fns = {phase.name: jit(self._make_phase(phase)) for phase in self.phases}
        self.finish = jit(self._finish)

    # ---- hooks of the model family -------------------------------------------------------------
    def _make_phases(self) -> list[Phase]:
        return make_phases(self.loss)

    def _optimizers(self, d_trainable) -> tuple[Adam, Adam]:
        """G's and D's Adam (with the lazy-regularisation correction)."""
        o, loss = self.optim, self.loss
        return (lazy_adam(o.g_lr, o.beta1, o.beta2, o.eps, loss.g_reg_interval, self.g_trainable),
                lazy_adam(o.d_lr, o.beta1, o.beta2, o.eps, loss.d_reg_interval, d_trainable))

    def hyperparameters(self, nimg: int) -> dict[str, np.float32]:
        """Scheduled values a phase takes as inputs at `nimg` images (none for StyleGAN2/3): 'lr' (or
        'g_lr' and 'd_lr') and 'beta2' override Adam's, the rest reach the losses."""
        del nimg
        return {}

    def ema_decay(self, nimg: int, ema_kimg: float, ema_rampup: float | None) -> float:
        """The G EMA's decay for the step that starts at `nimg` images."""
        return ema_beta(self.batch_size, nimg, ema_kimg, ema_rampup)

    def generator_conditioning(self, state: TrainState, labels: Any) -> Any:
        """What G takes as c for these dataset labels: the labels themselves (StyleGAN-T embeds captions)."""
        del state
        return labels

    def prompt_encoder(self, state: TrainState) -> Any:
        """The metrics' caption embedder (sampling.prompts.PromptEncoder) of a text-conditional G, else None."""
        del state

    @property
    def rotation(self) -> RotationConfig:
        """The SS-GAN rotation loss's settings (off without a LossConfig)."""
        return self.loss.rotation if self.loss is not None else RotationConfig()

    def step_batch_size(self, nimg: int) -> int:
        """The images the iteration starting at `nimg` takes per real batch (and generates per phase)."""
        del nimg
        return self.batch_size

    @property
    def batches_per_step(self) -> int:
        """Real batches one iteration consumes."""
        return 1 + max(phase.data_batch for phase in self.phases)

    # ---- state ------------------------------------------------------------------------------
    def init_state(self, seed: int) -> TrainState:
        """Fresh networks (official initialisation), optimiser states and counters, replicated."""
        key = jax.random.PRNGKey(seed)
        k_g, k_d, k_rng = jax.random.split(key, 3)

        def init():
            g = self.G.init({"params": k_g, "noise": k_g}, *self.G.example_inputs())
            d = self.D.init({"params": k_d}, *self.D.example_inputs())
            zero_i, zero_f = jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32)
            return TrainState(step=zero_i, nimg=zero_i, g=g, d=d, g_ema=g,
                              g_opt=self.g_tx.init(g["params"]), d_opt=self.d_tx.init(d["params"]),
                              pl_mean=zero_f, rng=k_rng, skipped=zero_i, streak=zero_i, worst_streak=zero_i,
                              augment_p=jnp.float32(self.augment.p), ada_sign_sum=zero_f, ada_sign_count=zero_f)

        return jax.jit(init, out_shardings=self.replicated)()

    def shard_batch(self, local_batch: np.ndarray) -> jax.Array:
        """Builds the global batch array from this process's slice (works on one or many hosts)."""
        local_batch = np.asarray(local_batch)
        global_shape = (local_batch.shape[0] * jax.process_count(), *local_batch.shape[1:])
        return jax.make_array_from_process_local_data(self.batch_sharding, local_batch, global_shape)

    # ---- draws ------------------------------------------------------------------------------
    def _sample_g_call(self, key, batch):
        return draws_lib.sample_g_call(key, batch, self.G.z_dim, self.G.num_ws, self.loss.style_mixing_prob > 0,
                                       self.noise_layers)

    def _sample_augment(self, key, batch):
        if not self.augment.active:
            return None
        return draw_random(key, self.augment.spec, batch, self.D.img_channels, *self.image_shape)

    def sample_draws(self, key: jax.Array, phase: Phase, batch: int) -> dict[str, Any]:
        """Every random input of one phase (see draws.py), drawn from `key`."""
        keys = iter(jax.random.split(key, 8))
        out: dict[str, Any] = {}
        if phase.main:
            out["main"] = dict(z=jax.random.normal(next(keys), (batch, self.G.z_dim)),
                               g=self._sample_g_call(next(keys), batch),
                               aug_fake=self._sample_augment(next(keys), batch))
            if phase.net == "D":
                out["main"]["aug_real"] = self._sample_augment(next(keys), batch)
        if phase.reg and phase.net == "G":
            n = batch // self.loss.pl_batch_shrink
            shape = (n, *self.image_shape, self.G.img_channels)
            out["reg"] = dict(z=jax.random.normal(next(keys), (n, self.G.z_dim)), g=self._sample_g_call(next(keys), n),
                              pl_noise=jax.random.normal(next(keys), shape))
        if phase.reg and phase.net == "D" and not phase.main:
            out["reg"] = dict(aug_real=self._sample_augment(next(keys), batch))
        return out

    # ---- network calls ------------------------------------------------------------------------
    def _run_g(self, g_vars, z, c, draws, update_emas=False):
        """G(z, c) with style mixing and the given noise; returns (images, mixed ws, variables)."""
        mutable = ["buffers"] if update_emas else False
        noise = draws["noise"]
        out = self.G.apply(g_vars, z, c, method="mapping", update_emas=update_emas, mutable=mutable)
        ws, g_vars = (out[0], {**g_vars, **out[1]}) if update_emas else (out, g_vars)
        if "mix_z" in draws:
            ws_other = self.G.apply(g_vars, draws["mix_z"], c, method="mapping")
            ws = losses.mix_styles(ws, ws_other, draws["mix_cutoff"], draws["mix_u"], self.loss.style_mixing_prob)
        synthesis_emas = update_emas and self.update_synthesis_emas
        out = self.G.apply({**g_vars, **noise}, ws, method="synthesis", noise_mode="random",
                           update_emas=synthesis_emas, mutable=["buffers"] if synthesis_emas else False)
        img, g_vars = (out[0], {**g_vars, **out[1]}) if synthesis_emas else (out, g_vars)
        return img, ws, g_vars

    def _d_view(self, img, nimg, p, aug_draws):
        """The images D sees: after the StyleGAN3 blur and the augmentation pipeline, as in the official run_D."""
        if self.max_blur_sigma > 0:
            sigma = losses.blur_sigma(nimg.astype(jnp.float32), self.loss.blur_init_sigma, self.loss.blur_fade_kimg)
            img = losses.blur_images(img, sigma, self.max_blur_sigma)
        if aug_draws is not None:
            img = augment_from_draws(img, aug_draws, p, self.augment.spec)
        return img

    def _run_d(self, d_vars, img, c, nimg, p, aug_draws):
        """D after the StyleGAN3 blur and the augmentation pipeline, as the official run_D."""
        return self.D.apply(d_vars, self._d_view(img, nimg, p, aug_draws), c)

    def _check_rotation(self) -> None:
        """A rotation loss needs D's 4-way head and square images (a quarter turn keeps their shape)."""
        if not self.rotation.active:
            return
        if getattr(self.D, "rotation_classes", 0) != ROTATIONS:
            raise ValueError(f"the rotation loss needs a discriminator with rotation_classes={ROTATIONS}, got "
                             f"{getattr(self.D, 'rotation_classes', None)}")
        if self.image_shape[0] != self.image_shape[1]:
            raise ValueError(f"the rotation loss needs square images, got {self.image_shape[0]}x{self.image_shape[1]}")

    def _rotation_term(self, kind: str, d_vars, img, c, nimg, p, aug_draws) -> tuple[Any, dict[str, jax.Array]]:
        """The weighted rotation cross-entropy of D's head on rotated copies of some of `img` and its metrics:
        kind 'real' (D's main phases, weight beta) or 'fake' (G's, weight alpha); (0, {}) when that weight is 0.

        The chosen examples keep their blur and augmentation draws and are rotated after them, so each
        label is the quarter turns of the image D sees.
        """
        weight = self.rotation.beta if kind == "real" else self.rotation.alpha
        if not weight:
            return 0.0, {}
        pick = functools.partial(rotation_loss.select_examples, count=self.rotation.num_examples(img.shape[0]))
        view = self._d_view(pick(img), nimg, p, jax.tree_util.tree_map(pick, aug_draws))
        rotated, labels = rotation_loss.rotated_copies(view)
        _, logits = self.D.apply(d_vars, rotated, jnp.repeat(pick(c), ROTATIONS, axis=0), rotation=True)
        loss = rotation_loss.cross_entropy(logits, labels)
        return loss * weight, {f"loss/rotation_{kind}": loss,
                               f"rotation/accuracy_{kind}": rotation_loss.accuracy(logits, labels)}

    # ---- phases -----------------------------------------------------------------------------
    def _apply(self, state, which, tx: Adam, grads, loss_value, reached, hyper):
        """Adam update of G or D; a non-finite loss or gradient skips it or is cleaned up (see OptimizerConfig)."""
        variables, opt_state = getattr(state, which), getattr(state, f"{which}_opt")
        ok = _all_finite(loss_value, grads)
        if self.optim.nonfinite_grads == "official":
            grads = _clean_gradients(grads)
        new_params, new_opt = tx.update(variables["params"], grads, opt_state, reached,
                                        lr=hyper.get(f"{which}_lr", hyper.get("lr")), beta2=hyper.get("beta2"))
        if self.optim.nonfinite_grads == "skip":
            new_params, new_opt = _select(ok, new_params, variables["params"]), _select(ok, new_opt, opt_state)
        return state.replace(**{which: {**variables, "params": new_params}, f"{which}_opt": new_opt}), ok

    def _phase_key(self, state, phase: Phase):
        return jax.random.fold_in(jax.random.fold_in(state.rng, state.step), self.phases.index(phase))

    def _make_phase(self, phase: Phase) -> Callable:
        def step(state, real_img, real_c, gen_c, draws=None, hyper=None):
            if draws is None:
                draws = self.sample_draws(self._phase_key(state, phase), phase, gen_c.shape[0])
            return self._run_phase(state, phase, {} if hyper is None else hyper, real_img, real_c, gen_c, draws)

        return step

    def _loss_inputs(self, state, phase: Phase, real_img, real_c, gen_c, draws):
        """What a phase's loss needs besides the parameters: for D phases the (EMA-updating) fakes."""
        if phase.net == "G" or not phase.main:
            return state.g, None
        d = draws["main"]
        fake, _, g_vars = self._run_g(state.g, d["z"], gen_c, d["g"], update_emas=True)
        return g_vars, jax.lax.stop_gradient(fake)

    def _prepare_reals(self, state: TrainState, real_img: jax.Array) -> jax.Array:
        """The uint8 batch as D sees it: float32 in [-1, 1]."""
        del state
        return to_float_images(real_img)

    def _run_phase(self, state: TrainState, phase: Phase, hyper, real_img, real_c, gen_c, draws):
        real_img = self._prepare_reals(state, real_img)
        g_vars, fake = self._loss_inputs(state, phase, real_img, real_c, gen_c, draws)
        which = phase.net.lower()
        loss_fn = self._g_loss if phase.net == "G" else self._d_loss
        loss_args = (state, hyper, real_img, real_c, gen_c, draws, fake)
        (loss, aux), grads, reached = value_grad_and_reached(
            lambda params, *rest: loss_fn(params, rest[0], phase, *rest[1:]), getattr(state, which)["params"],
            *loss_args)
        tx = self.g_tx if phase.net == "G" else self.d_tx
        state, ok = self._apply(state, which, tx, grads, loss, reached, hyper)
        if "pl_mean" in aux:
            state = state.replace(pl_mean=jnp.where(ok, aux["pl_mean"], state.pl_mean))
            aux["pl_mean"] = state.pl_mean
        if phase.main and phase.net == "D" and "buffers" in g_vars:
            state = kept_collection(state, ok, "g", "buffers", g_vars["buffers"])
        if "signs/real_sum" in aux:
            state = state.replace(ada_sign_sum=state.ada_sign_sum + aux.pop("signs/real_sum"),
                                  ada_sign_count=state.ada_sign_count + real_img.shape[0])
        return state, {**aux, f"finite/{phase.name}": ok}

    def _g_loss(self, g_params, state: TrainState, phase: Phase, hyper, real_img, real_c, gen_c, draws, fake):
        """Gmain (non-saturating loss through D) and/or Greg (path length), times the phase's gain."""
        del hyper, real_img, real_c, fake
        gain = phase.interval
        g_vars = {**state.g, "params": g_params}
        total, aux = 0.0, {}
        if phase.main:
            d = draws["main"]
            img, _, _ = self._run_g(g_vars, d["z"], gen_c, d["g"])
            logits = self._run_d(state.d, img, gen_c, state.nimg, state.augment_p, d["aug_fake"])
            rotation, rotation_aux = self._rotation_term("fake", state.d, img, gen_c, state.nimg, state.augment_p,
                                                         d["aug_fake"])
            total = total + (jnp.mean(jax.nn.softplus(-logits)) + rotation) * gain
            aux.update({"loss/G": jnp.mean(jax.nn.softplus(-logits)), "scores/fake_G": jnp.mean(logits),
                        **rotation_aux})
        if phase.reg:
            term, pl_aux = self._path_length_term(g_vars, state, gen_c, draws["reg"])
            total, aux = total + term * gain, {**aux, **pl_aux}
        return total, aux

    def _path_length_term(self, g_vars, state: TrainState, gen_c, d) -> tuple[jax.Array, dict[str, jax.Array]]:
        """pl_weight x the path-length penalty on the reg draws `d`, and its metrics (with the new pl_mean)."""
        c = gen_c[:d["z"].shape[0]]
        _, ws, _ = self._run_g(g_vars, d["z"], c, d["g"])
        synth = lambda w: self.G.apply({**g_vars, **d["g"]["noise"]}, w, method="synthesis", noise_mode="random")
        lengths = losses.path_lengths(synth, ws, d["pl_noise"])
        penalty, new_mean = losses.path_length_penalty(lengths, state.pl_mean, self.loss.pl_decay)
        return jnp.mean(penalty * self.loss.pl_weight), {"loss/pl_penalty": jnp.mean(penalty), "pl_mean": new_mean}

    def _d_loss(self, d_params, state: TrainState, phase: Phase, hyper, real_img, real_c, gen_c, draws, fake):
        """Dmain (logistic loss on fakes and reals) and/or Dreg (R1 on the reals), times the phase's gain."""
        del hyper
        gain = phase.interval
        d_vars = {**state.d, "params": d_params}
        p, nimg = state.augment_p, state.nimg
        aug_real = draws["main"]["aug_real"] if phase.main else draws["reg"]["aug_real"]
        total, aux = 0.0, {}
        if phase.main:
            fake_logits = self._run_d(d_vars, fake, gen_c, nimg, p, draws["main"]["aug_fake"])
            total = total + jnp.mean(jax.nn.softplus(fake_logits)) * gain
            aux["scores/fake"] = jnp.mean(fake_logits)
        discriminate = lambda x: self._run_d(d_vars, x, real_c, nimg, p, aug_real)
        if phase.reg:
            real_logits, vjp = jax.vjp(discriminate, real_img)
            penalty = jnp.sum(jnp.square(vjp(jnp.ones_like(real_logits))[0]), axis=(1, 2, 3))
            aux["loss/r1_penalty"] = jnp.mean(penalty)
        else:
            real_logits, penalty = discriminate(real_img), 0.0
        per_sample = penalty * (self.loss.r1_gamma / 2)
        if phase.main:
            per_sample = per_sample + jax.nn.softplus(-real_logits)[:, 0]
            aux["loss/D"] = jnp.mean(jax.nn.softplus(fake_logits)) + jnp.mean(jax.nn.softplus(-real_logits))
            rotation, rotation_aux = self._rotation_term("real", d_vars, real_img, real_c, nimg, p, aug_real)
            total, aux = total + rotation * gain, {**aux, **rotation_aux}
        total = total + jnp.mean(per_sample) * gain
        aux["scores/real"] = jnp.mean(real_logits)
        aux["signs/real_sum"] = jnp.sum(jnp.sign(real_logits))
        return total, aux

    def _finish(self, state: TrainState, beta: jax.Array, phases_ok: list[jax.Array]):
        """The G EMA (parameters lerped, buffers copied), counters, and ADA's p every `interval` iterations."""
        params = jax.tree_util.tree_map(lambda p, e: losses.lerp(p, e, beta), state.g["params"], state.g_ema["params"])
        g_ema = {**state.g, "params": params}
        ok = jnp.all(jnp.stack(phases_ok))
        streak = jnp.where(ok, 0, state.streak + 1)
        step = state.step + 1
        state = state.replace(g_ema=g_ema, step=step, nimg=state.nimg + self.batch_size,
                              skipped=state.skipped + (~ok).astype(jnp.int32), streak=streak,
                              worst_streak=jnp.maximum(state.worst_streak, streak))
        if self.augment.mode == "ada":
            a = self.augment
            adjust = step % a.interval == 0
            new_p = adjust_p(state.augment_p, state.ada_sign_sum, state.ada_sign_count, a.target, self.batch_size,
                             a.interval, a.kimg)
            zero = jnp.zeros((), jnp.float32)
            state = state.replace(augment_p=jnp.where(adjust, new_p, state.augment_p),
                                  ada_sign_sum=jnp.where(adjust, zero, state.ada_sign_sum),
                                  ada_sign_count=jnp.where(adjust, zero, state.ada_sign_count))
        return state, {"augment/p": state.augment_p}

    def compile_phases(self, state: TrainState, image_shape: tuple[int, int, int], c_dim: int) -> None:
        """Compiles every phase for this state and these batch shapes without running any.

        With several processes on CPU, a collective fails when a peer arrives more than 30 s late;
        compiling all phases before the first one runs keeps the processes in step.
        """
        local = self.batch_size // jax.process_count()
        images = self.shard_batch(np.zeros((local, *image_shape), np.uint8))
        labels = self.shard_batch(np.zeros((local, c_dim), np.float32))
        hyper = self.hyper_inputs(0)
        for phase in self.phases:
            if phase.main or phase.reg:
                self.phase_fns[phase.name].lower(state, images, labels, labels, hyper=hyper).compile()
        flag = jax.ShapeDtypeStruct((), jnp.bool_, sharding=self.replicated)
        for count in sorted({len(self._phases_run(step)) for step in range(self._schedule_period())}):
            self.finish.lower(state, jnp.float32(0.5), [flag] * count).compile()

    def _schedule_period(self) -> int:
        return int(np.lcm.reduce([phase.interval for phase in self.phases]))

    def _phases_run(self, step: int) -> list[Phase]:
        """The phases that run in iteration `step` (a phase with nothing to compute never runs)."""
        return [phase for phase in self.phases if step % phase.interval == 0 and (phase.main or phase.reg)]

    # ---- one iteration ----------------------------------------------------------------------
    def hyper_inputs(self, nimg: int) -> dict[str, jax.Array] | None:
        """`hyperparameters(nimg)` as the phase functions' `hyper` argument (None when there are none)."""
        values = self.hyperparameters(nimg)
        return {name: jnp.float32(value) for name, value in values.items()} if values else None

    def train_step(self, state: TrainState, step: int, nimg: int, real_img: jax.Array | tuple[jax.Array, ...],
                   real_c: jax.Array | tuple[jax.Array, ...], gen_c: tuple[jax.Array, ...], ema_kimg: float,
                   ema_rampup: float | None, draws: dict[str, dict] | None = None
                   ) -> tuple[TrainState, dict[str, Any]]:
        """One official training iteration: the phases due at `step` in order, then the G EMA and ADA.

        `step` and `nimg` are the host's copies of the state's counters (no device sync);
        `real_img` is uint8 NHWC, or a tuple of `batches_per_step` such batches (and `real_c` alike);
        `gen_c` holds one label batch per phase of `self.phases`;
        `draws` optionally gives each phase's random inputs by phase name (replay).
        Returns device arrays only, so consecutive steps are dispatched without waiting.
        """
        if not isinstance(real_img, tuple):
            real_img, real_c = (real_img,), (real_c,)
        if len(real_img) != self.batches_per_step:
            raise ValueError(f"an iteration takes {self.batches_per_step} real batch(es), got {len(real_img)}")
        hyper = self.hyper_inputs(nimg)
        metrics: dict[str, Any] = {}
        for phase in self._phases_run(step):
            index = self.phases.index(phase)
            extra = () if draws is None else (draws[phase.name],)
            state, m = self.phase_fns[phase.name](state, real_img[phase.data_batch], real_c[phase.data_batch],
                                                  gen_c[index], *extra, hyper=hyper)
            metrics.update(m)
        beta = self.ema_decay(nimg, ema_kimg, ema_rampup)
        phases_ok = [v for k, v in metrics.items() if k.startswith("finite/")]
        state, m = self.finish(state, jnp.float32(beta), phases_ok)
        metrics.update(m)
        return state, metrics
