"""Replays an R3GAN loss file (the r3gan_*_loss.npz format) through stylegan_jax's networks and loss.

The file names its G and D network files (`meta/G_file`, `meta/D_file`, beside it), whose
`Model.*` entries are the state dicts; `meta/*_init_kwargs` are the constructor arguments and
`meta/*_param_checksum` the float64 sum of each state dict. One D phase and one G phase run at
those parameters on `input/real`, `input/z`, `input/c` with `input/gamma`; gradients are those of
`input/scale` times each phase's loss, as the official trainer's.
"""
from __future__ import annotations

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.convert import from_official_state_dict
from stylegan_jax.convert.state_dict import flatten_variables
from stylegan_jax.training.r3gan_loss import critic, discriminator_loss, generator_loss

CLASS_NAMES = {"G": "training.networks.Generator", "D": "training.networks.Discriminator"}
STATE_PREFIX = "Model."


def load_phase_networks(path: str, data) -> dict[str, tuple]:
    """{'G', 'D': (module, variables)} from the network files a loss file names, checksums checked."""
    nets = {}
    for key, class_name in CLASS_NAMES.items():
        net_path = os.path.join(os.path.dirname(os.path.abspath(path)), str(data[f"meta/{key}_file"]))
        with np.load(net_path, allow_pickle=False) as net:
            state = {k: net[k] for k in net.files if k.startswith(STATE_PREFIX)}
        checksum = sum(float(np.sum(v, dtype=np.float64)) for v in state.values())
        expected = float(data[f"meta/{key}_param_checksum"])
        if not np.isclose(checksum, expected, rtol=1e-9, atol=1e-9):
            raise ValueError(f"{net_path}: parameter checksum {checksum!r} is not the loss file's {expected!r}")
        nets[key] = from_official_state_dict(class_name, json.loads(str(data[f"meta/{key}_init_kwargs"])), state)
    return nets


def _named(prefix: str, grads) -> dict[str, np.ndarray]:
    return {f"{prefix}/{name}": np.asarray(leaf, np.float32)
            for name, (_, _, leaf) in flatten_variables({"params": grads}).items()}


def _nchw(x) -> np.ndarray:
    return np.transpose(np.asarray(x, np.float32), (0, 3, 1, 2))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _discriminator_phase(G, D, g_vars, d_vars, real, z, c, gamma, scale):
    """(loss, mean adv, mean R1, mean R2), their gradients by D's parameters times scale, the terms
    and the generated images."""
    fake = G.apply(g_vars, z, c)

    def objectives(params):
        score = critic(lambda x, labels: D.apply({**d_vars, "params": params}, x, labels), c)
        loss, terms = discriminator_loss(score, score, real, fake, gamma)
        means = [jnp.mean(t) for t in (terms.adversarial, terms.r1, terms.r2)]
        return jnp.stack([loss, *means]), terms

    values, pullback, terms = jax.vjp(objectives, d_vars["params"], has_aux=True)
    (grads,) = jax.vmap(pullback)(scale * jnp.eye(4, dtype=values.dtype))
    return values, grads, terms, fake


@functools.partial(jax.jit, static_argnums=(0, 1))
def _generator_phase(G, D, g_vars, d_vars, real, z, c, scale):
    """G's loss, its terms and the gradient of scale * loss by G's parameters."""
    score = critic(lambda x, labels: D.apply(d_vars, x, labels), c)

    def objective(params):
        return generator_loss(score, score, real, G.apply({**g_vars, "params": params}, z, c))

    (loss, terms), grads = jax.value_and_grad(objective, has_aux=True)(g_vars["params"])
    return loss, jax.tree_util.tree_map(lambda g: scale * g, grads), terms


def replay_r3gan_loss(path: str) -> dict[str, np.ndarray]:
    """Every `output/*` quantity of an R3GAN loss file (without the prefix, NCHW images) and the
    gradients `grad_param_D/<name>` (with its parts `grad_param_D_{adv,r1,r2}/<name>`) and
    `grad_param_G/<name>`, computed by stylegan_jax from the file's inputs and networks."""
    with np.load(path, allow_pickle=False) as data:
        nets = load_phase_networks(path, data)
        real = np.transpose(data["input/real"], (0, 2, 3, 1))
        z, c = data["input/z"], data["input/c"]
        gamma, scale = np.float32(data["input/gamma"]), np.float32(data["input/scale"])
    (G, g_vars), (D, d_vars) = nets["G"], nets["D"]
    values, d_grads, d_terms, fake = _discriminator_phase(G, D, g_vars, d_vars, real, z, c, gamma, scale)
    g_loss, g_grads, g_terms = _generator_phase(G, D, g_vars, d_vars, real, z, c, scale)
    out = dict(zip(["D/loss", "D/adv_mean", "D/r1_mean", "D/r2_mean"], values))
    out.update({
        "D/adv_loss": d_terms.adversarial, "D/rel_logits": d_terms.relativistic_logits, "D/r1": d_terms.r1,
        "D/r2": d_terms.r2, "real_logits": d_terms.real_logits, "fake_logits": d_terms.fake_logits,
        "G/loss": g_loss, "G/adv_loss": g_terms.adversarial, "G/rel_logits": g_terms.relativistic_logits})
    out = {name: np.asarray(v, np.float32) for name, v in out.items()}
    out.update({"fake_img": _nchw(fake), "D/dlogits_dreal": _nchw(d_terms.real_input_grads),
                "D/dlogits_dfake": _nchw(d_terms.fake_input_grads)})
    for i, prefix in enumerate(["grad_param_D", "grad_param_D_adv", "grad_param_D_r1", "grad_param_D_r2"]):
        out.update(_named(prefix, jax.tree_util.tree_map(lambda g: g[i], d_grads)))
    out.update(_named("grad_param_G", g_grads))
    return out
