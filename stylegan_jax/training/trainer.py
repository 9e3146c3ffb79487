"""The training phases of StyleGAN2/3 (Gmain, Greg, Dmain, Dreg, EMA) as jitted, sharded steps.

Every phase is a pure function of (state, inputs) compiled once with the batch sharded over the
'data' axis of a device mesh and everything else replicated, so XLA inserts the gradient
all-reduces and the result does not depend on the number of devices.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from stylegan_jax.training import losses
from stylegan_jax.training.state import TrainState


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Loss and regularisation settings (official names and defaults)."""

    r1_gamma: float = 10.0
    pl_weight: float = 0.0
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    style_mixing_prob: float = 0.0
    blur_init_sigma: float = 0.0
    blur_fade_kimg: float = 0.0
    g_reg_interval: int = 4
    d_reg_interval: int = 16


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Adam settings of G and D (official: betas (0, 0.99), eps 1e-8)."""

    g_lr: float = 0.002
    d_lr: float = 0.002
    beta1: float = 0.0
    beta2: float = 0.99
    eps: float = 1e-8


def lazy_adam(lr: float, beta1: float, beta2: float, eps: float, reg_interval: int) -> optax.GradientTransformation:
    """Adam with the lazy-regularisation correction: lr and betas scaled by interval / (interval + 1)."""
    ratio = reg_interval / (reg_interval + 1)
    return optax.adam(lr * ratio, b1=beta1 ** ratio, b2=beta2 ** ratio, eps=eps)


def ema_beta(batch_size: int, cur_nimg: int, ema_kimg: float, ema_rampup: float | None) -> float:
    """The official G EMA decay for one step: half-life ema_kimg, ramped up over the first images."""
    ema_nimg = ema_kimg * 1000
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
    return 0.5 ** (batch_size / max(ema_nimg, 1e-8))


def to_float_images(images: jax.Array) -> jax.Array:
    """uint8 images in [0, 255] -> float32 in [-1, 1], like the official training loop."""
    return images.astype(jnp.float32) / 127.5 - 1


def _all_finite(*trees) -> jax.Array:
    leaves = [x for t in trees for x in jax.tree_util.tree_leaves(t)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _select(ok, new, old):
    return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)


class Trainer:
    """Compiles and runs the training phases of one (G, D) pair on a device mesh."""

    def __init__(self, G: nn.Module, D: nn.Module, loss: LossConfig, optim: OptimizerConfig,
                 batch_size: int, mesh: Mesh | None = None):
        self.G, self.D, self.loss, self.batch_size = G, D, loss, batch_size
        self.mesh = mesh or Mesh(np.array(jax.devices()), ("data",))
        if batch_size % self.mesh.size:
            raise ValueError(f"batch_size {batch_size} is not divisible by the {self.mesh.size} devices")
        self.replicated = NamedSharding(self.mesh, P())
        self.batch_sharding = NamedSharding(self.mesh, P("data"))
        self.g_tx = lazy_adam(optim.g_lr, optim.beta1, optim.beta2, optim.eps, loss.g_reg_interval)
        self.d_tx = lazy_adam(optim.d_lr, optim.beta1, optim.beta2, optim.eps, loss.d_reg_interval)
        self.max_blur_sigma = loss.blur_init_sigma if loss.blur_fade_kimg > 0 else 0.0
        jit = lambda fn: jax.jit(fn, donate_argnums=0, out_shardings=self.replicated)
        self.g_main = jit(self._g_main)
        self.g_reg = jit(self._g_reg)
        self.d_main = jit(self._d_main)
        self.d_reg = jit(self._d_reg)
        self.update_ema = jit(self._update_ema)

    # ---- state ------------------------------------------------------------------------------
    def init_state(self, seed: int) -> TrainState:
        """Fresh networks (official initialisation), optimiser states and counters, replicated."""
        key = jax.random.PRNGKey(seed)
        k_g, k_d, k_rng = jax.random.split(key, 3)

        def init():
            g = self.G.init({"params": k_g, "noise": k_g}, *self.G.example_inputs())
            d = self.D.init({"params": k_d}, *self.D.example_inputs())
            return TrainState(step=jnp.zeros((), jnp.int32), nimg=jnp.zeros((), jnp.int32), g=g, d=d, g_ema=g,
                              g_opt=self.g_tx.init(g["params"]), d_opt=self.d_tx.init(d["params"]),
                              pl_mean=jnp.zeros((), jnp.float32), rng=k_rng, skipped=jnp.zeros((), jnp.int32),
                              streak=jnp.zeros((), jnp.int32), worst_streak=jnp.zeros((), jnp.int32))

        return jax.jit(init, out_shardings=self.replicated)()

    def shard_batch(self, local_batch: np.ndarray) -> jax.Array:
        """Builds the global batch array from this process's slice (works on one or many hosts)."""
        local_batch = np.asarray(local_batch)
        global_shape = (local_batch.shape[0] * jax.process_count(), *local_batch.shape[1:])
        return jax.make_array_from_process_local_data(self.batch_sharding, local_batch, global_shape)

    # ---- network calls ------------------------------------------------------------------------
    def _run_g(self, g_vars, z, c, key, update_emas=False):
        k_mix, k_z2, k_noise = jax.random.split(key, 3)
        mutable = ["buffers"] if update_emas else False
        call = lambda method, *a, **kw: self.G.apply(g_vars, *a, method=method, mutable=mutable, **kw)
        out = call("mapping", z, c, update_emas=update_emas)
        ws, g_vars = (out[0], {**g_vars, **out[1]}) if update_emas else (out, g_vars)
        if self.loss.style_mixing_prob > 0:
            z2 = jax.random.normal(k_z2, z.shape)
            ws2 = self.G.apply(g_vars, z2, c, method="mapping")
            ws = losses.mix_styles(ws, ws2, k_mix, self.loss.style_mixing_prob)
        out = self.G.apply(g_vars, ws, method="synthesis", noise_mode="random", update_emas=update_emas,
                           mutable=mutable, rngs={"noise": k_noise})
        img, g_vars = (out[0], {**g_vars, **out[1]}) if update_emas else (out, g_vars)
        return img, ws, g_vars

    def _run_d(self, d_vars, img, c, nimg):
        if self.max_blur_sigma > 0:
            sigma = losses.blur_sigma(nimg.astype(jnp.float32), self.loss.blur_init_sigma, self.loss.blur_fade_kimg)
            img = losses.blur_images(img, sigma, self.max_blur_sigma)
        return self.D.apply(d_vars, img, c)

    def _phase_keys(self, state, phase: int):
        return jax.random.split(jax.random.fold_in(jax.random.fold_in(state.rng, state.step), phase), 3)

    # ---- phases -----------------------------------------------------------------------------
    def _apply(self, state, which, tx, grads, loss_value, **extra):
        """Adam update of G or D, skipped (state kept) when the loss or a gradient is not finite."""
        variables, opt_state = getattr(state, which), getattr(state, f"{which}_opt")
        updates, new_opt = tx.update(grads, opt_state, variables["params"])
        new_params = optax.apply_updates(variables["params"], updates)
        ok = _all_finite(loss_value, grads)
        new_state = state.replace(**{which: {**variables, "params": _select(ok, new_params, variables["params"])},
                                     f"{which}_opt": _select(ok, new_opt, opt_state)}, **extra)
        return new_state, ok

    def _g_main(self, state: TrainState, gen_c: jax.Array):
        k_z, k_g, _ = self._phase_keys(state, 0)
        z = jax.random.normal(k_z, (gen_c.shape[0], self.G.z_dim))

        def loss_fn(g_params):
            img, _, _ = self._run_g({**state.g, "params": g_params}, z, gen_c, k_g)
            return losses.generator_loss(self._run_d(state.d, img, gen_c, state.nimg))

        loss, grads = jax.value_and_grad(loss_fn)(state.g["params"])
        state, ok = self._apply(state, "g", self.g_tx, grads, loss)
        return state, {"loss/G": loss, "finite/G": ok}

    def _g_reg(self, state: TrainState, gen_c: jax.Array):
        k_z, k_g, k_pl = self._phase_keys(state, 1)
        n = gen_c.shape[0] // self.loss.pl_batch_shrink
        z = jax.random.normal(k_z, (gen_c.shape[0], self.G.z_dim))[:n]
        c = gen_c[:n]

        def loss_fn(g_params):
            g_vars = {**state.g, "params": g_params}
            _, ws, _ = self._run_g(g_vars, z, c, k_g)
            k_noise = jax.random.fold_in(k_g, 1)
            synth = lambda w: self.G.apply(g_vars, w, method="synthesis", noise_mode="random",
                                           rngs={"noise": k_noise})
            lengths = losses.path_lengths(synth, ws, k_pl)
            penalty, new_mean = losses.path_length_penalty(lengths, state.pl_mean, self.loss.pl_decay)
            return jnp.mean(penalty * self.loss.pl_weight) * self.loss.g_reg_interval, (jnp.mean(penalty), new_mean)

        (loss, (penalty, new_mean)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.g["params"])
        state, ok = self._apply(state, "g", self.g_tx, grads, loss)
        state = state.replace(pl_mean=jnp.where(ok, new_mean, state.pl_mean))
        return state, {"loss/pl_penalty": penalty, "pl_mean": state.pl_mean, "finite/Greg": ok}

    def _d_main(self, state: TrainState, real_img: jax.Array, real_c: jax.Array, gen_c: jax.Array):
        real_img = to_float_images(real_img)
        k_z, k_g, _ = self._phase_keys(state, 2)
        z = jax.random.normal(k_z, (gen_c.shape[0], self.G.z_dim))
        fake, _, g_vars = self._run_g(state.g, z, gen_c, k_g, update_emas=True)
        fake = jax.lax.stop_gradient(fake)

        def loss_fn(d_params):
            d_vars = {**state.d, "params": d_params}
            fake_logits = self._run_d(d_vars, fake, gen_c, state.nimg)
            real_logits = self._run_d(d_vars, real_img, real_c, state.nimg)
            return losses.discriminator_loss(real_logits, fake_logits), (real_logits, fake_logits)

        (loss, (real_logits, fake_logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.d["params"])
        state, ok = self._apply(state, "d", self.d_tx, grads, loss)
        buffers = _select(ok, g_vars["buffers"], state.g["buffers"])
        state = state.replace(g={**state.g, "buffers": buffers})
        return state, {"loss/D": loss, "scores/real": jnp.mean(real_logits), "scores/fake": jnp.mean(fake_logits),
                       "finite/D": ok}

    def _d_reg(self, state: TrainState, real_img: jax.Array, real_c: jax.Array):
        real_img = to_float_images(real_img)
        def loss_fn(d_params):
            d_vars = {**state.d, "params": d_params}
            penalty = losses.r1_penalty(lambda x: self._run_d(d_vars, x, real_c, state.nimg), real_img)
            return jnp.mean(penalty * (self.loss.r1_gamma / 2)) * self.loss.d_reg_interval, jnp.mean(penalty)

        (loss, penalty), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.d["params"])
        state, ok = self._apply(state, "d", self.d_tx, grads, loss)
        return state, {"loss/r1_penalty": penalty, "finite/Dreg": ok}

    def _update_ema(self, state: TrainState, beta: jax.Array, phases_ok: list[jax.Array]):
        params = jax.tree_util.tree_map(lambda p, e: p + (e - p) * beta, state.g["params"], state.g_ema["params"])
        g_ema = {**state.g_ema, "params": params, "buffers": state.g["buffers"]}
        ok = jnp.all(jnp.stack(phases_ok))
        streak = jnp.where(ok, 0, state.streak + 1)
        return state.replace(g_ema=g_ema, step=state.step + 1, nimg=state.nimg + self.batch_size,
                             skipped=state.skipped + (~ok).astype(jnp.int32), streak=streak,
                             worst_streak=jnp.maximum(state.worst_streak, streak)), {}

    def compile_phases(self, state: TrainState, image_shape: tuple[int, int, int], c_dim: int) -> None:
        """Compiles every phase for this state and these batch shapes without running any.

        With several processes on CPU, a collective fails when a peer arrives more than 30 s late;
        compiling all phases before the first one runs keeps the processes in step.
        """
        local = self.batch_size // jax.process_count()
        images = self.shard_batch(np.zeros((local, *image_shape), np.uint8))
        labels = self.shard_batch(np.zeros((local, c_dim), np.float32))
        self.g_main.lower(state, labels).compile()
        self.d_main.lower(state, images, labels, labels).compile()
        regs = [0]
        if self.loss.pl_weight > 0:
            self.g_reg.lower(state, labels).compile()
            regs.append(1)
        if self.loss.r1_gamma > 0:
            self.d_reg.lower(state, images, labels).compile()
            regs.append(len(regs))
        flag = jax.ShapeDtypeStruct((), jnp.bool_, sharding=self.replicated)
        for extra in regs:
            self.update_ema.lower(state, jnp.float32(0.5), [flag] * (2 + extra)).compile()

    # ---- one iteration ----------------------------------------------------------------------
    def train_step(self, state: TrainState, step: int, nimg: int, real_img: jax.Array, real_c: jax.Array,
                   gen_c: tuple[jax.Array, jax.Array, jax.Array], ema_kimg: float,
                   ema_rampup: float | None) -> tuple[TrainState, dict[str, Any]]:
        """One official training iteration: Gmain, Greg (lazy), Dmain, Dreg (lazy), then the G EMA.

        `step` and `nimg` are the host's copies of the state's counters (no device sync);
        `real_img` is uint8 NHWC; `gen_c` holds the label batches of Gmain, Greg and Dmain.
        Returns device arrays only, so consecutive steps are dispatched without waiting.
        """
        metrics: dict[str, Any] = {}
        state, m = self.g_main(state, gen_c[0]); metrics.update(m)
        if self.loss.pl_weight > 0 and step % self.loss.g_reg_interval == 0:
            state, m = self.g_reg(state, gen_c[1]); metrics.update(m)
        state, m = self.d_main(state, real_img, real_c, gen_c[2]); metrics.update(m)
        if self.loss.r1_gamma > 0 and step % self.loss.d_reg_interval == 0:
            state, m = self.d_reg(state, real_img, real_c); metrics.update(m)
        beta = ema_beta(self.batch_size, nimg, ema_kimg, ema_rampup)
        phases_ok = [v for k, v in metrics.items() if k.startswith("finite/")]
        state, _ = self.update_ema(state, jnp.float32(beta), phases_ok)
        return state, metrics
