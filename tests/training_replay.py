"""Replays an official training run (`train_step_*.npz`) through the project's Trainer.

The file holds the official configuration, the initial state dicts, every iteration's inputs and
every random number the official phases drew, in order. This module turns them into the Trainer's
configuration and per-phase draws (see stylegan_jax/training/draws.py), runs the iterations and
returns the states in official state_dict names.
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from stylegan_jax.augment import AugmentSpec, draw_layout
from stylegan_jax.convert.state_dict import from_official_state_dict, to_official_state_dict
from stylegan_jax.training.ada import AugmentConfig, no_augmentation
from stylegan_jax.training.draws import noise_collection
from stylegan_jax.training.trainer import LossConfig, OptimizerConfig, Trainer


# StyleGAN2Loss's constructor defaults, for keys a file's loss_kwargs leave out.
OFFICIAL_LOSS_DEFAULTS = dict(r1_gamma=10.0, style_mixing_prob=0.0, pl_weight=0.0, pl_batch_shrink=2, pl_decay=0.01,
                              blur_init_sigma=0.0, blur_fade_kimg=0.0)


def _json(npz, key: str):
    return json.loads(str(npz[key]))


def _state_dict(npz, prefix: str) -> dict[str, np.ndarray]:
    return {key[len(prefix):]: npz[key] for key in npz.files if key.startswith(prefix)}


def _augment_config(cfg: dict[str, Any]) -> AugmentConfig:
    kwargs = dict(cfg.get("augment_kwargs") or {})
    kwargs.pop("class_name", None)
    p, target = float(cfg.get("augment_p") or 0), cfg.get("ada_target")
    if not kwargs or (p <= 0 and target is None):
        return no_augmentation()
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    return AugmentConfig(mode="fixed" if target is None else "ada", spec=AugmentSpec(**kwargs), p=p,
                         target=0.6 if target is None else float(target), interval=int(cfg["ada_interval"]),
                         kimg=float(cfg["ada_kimg"]))


def build_trainer(npz) -> tuple[Trainer, Any]:
    """The Trainer of the file's configuration and its initial state (official weights)."""
    cfg = _json(npz, "meta/config")
    nets = {}
    for net in ("G", "D"):
        class_name, kwargs = str(npz[f"meta/{net}/class_name"]), _json(npz, f"meta/{net}/init_kwargs")
        nets[net] = from_official_state_dict(class_name, kwargs, _state_dict(npz, f"init/{net}/"))
    loss_kwargs = {**OFFICIAL_LOSS_DEFAULTS, **cfg["loss_kwargs"]}
    loss = LossConfig(**{f.name: loss_kwargs[f.name] for f in dataclasses.fields(LossConfig)
                         if f.name in loss_kwargs},
                      g_reg_interval=cfg["G_reg_interval"] or 0, d_reg_interval=cfg["D_reg_interval"] or 0)
    g_opt, d_opt = cfg["G_opt_kwargs"], cfg["D_opt_kwargs"]
    if list(g_opt["betas"]) != list(d_opt["betas"]) or g_opt["eps"] != d_opt["eps"]:
        raise ValueError("the Trainer shares Adam betas and eps between G and D, as train.py does")
    optim = OptimizerConfig(g_lr=g_opt["lr"], d_lr=d_opt["lr"], beta1=g_opt["betas"][0], beta2=g_opt["betas"][1],
                            eps=g_opt["eps"], nonfinite_grads="official")
    batch = int(cfg["batch_size"])
    devices = jax.devices()
    mesh = Mesh(np.array(devices[:math.gcd(batch, len(devices))]), ("data",))
    freeze = int(_json(npz, "meta/D/init_kwargs").get("block_kwargs", {}).get("freeze_layers", 0))
    (G, g_vars), (D, d_vars) = nets["G"], nets["D"]
    trainer = Trainer(G, D, loss, optim, batch, mesh, augment=_augment_config(cfg), freeze_d=freeze)
    state = trainer.init_state(0)
    put = lambda tree: jax.device_put(jax.tree_util.tree_map(np.array, tree), trainer.replicated)  # own buffers
    state = state.replace(g=put(g_vars), d=put(d_vars), g_ema=put(g_vars),
                          g_opt=put(trainer.g_tx.init(g_vars["params"])), d_opt=put(trainer.d_tx.init(d_vars["params"])))
    return trainer, state


class _DrawStream:
    """The file's recorded draws in consumption order, handed out per call."""

    def __init__(self, npz):
        self.npz, self.meta, self.next = npz, _json(npz, "meta/draws"), 0

    def take(self, count: int) -> list[tuple[dict, np.ndarray]]:
        out = [(m, self.npz[f"draw/{m['index']:04d}"]) for m in self.meta[self.next:self.next + count]]
        if len(out) != count:
            raise ValueError(f"the file has {len(self.meta)} draws; the replay needs more")
        self.next += count
        return out

    def g_call(self, trainer: Trainer) -> dict[str, Any]:
        """Mixing cutoff, decision and latent, then one noise image per layer (NCHW -> NHWC)."""
        mixing = trainer.loss.style_mixing_prob > 0
        draws = self.take(3 * mixing + len(trainer.noise_layers))
        out: dict[str, Any] = {}
        if mixing:
            (_, cutoff), (_, u), (_, z) = draws[:3]
            out.update(mix_cutoff=np.int32(cutoff), mix_u=np.float32(u), mix_z=z)
            draws = draws[3:]
        noise = {}
        for meta, value in draws:
            path = tuple(meta["role"].split("/", 1)[1].split("."))
            noise[path] = np.transpose(value, (0, 2, 3, 1))
        out["noise"] = noise_collection(noise)
        return out

    def augment(self, trainer: Trainer, batch: int) -> list[np.ndarray] | None:
        if not trainer.augment.active:
            return None
        res, channels = trainer.D.img_resolution, trainer.D.img_channels
        layout = draw_layout(trainer.augment.spec, batch, channels, res, res)
        return [value for _, value in self.take(len(layout))]


def phase_draws(stream: _DrawStream, trainer: Trainer, phase, z: np.ndarray) -> dict[str, Any]:
    """The draws of one phase, in the official consumption order."""
    batch = z.shape[0]
    out: dict[str, Any] = {}
    if phase.main:
        out["main"] = dict(z=z, g=stream.g_call(trainer), aug_fake=stream.augment(trainer, batch))
        if phase.net == "D":
            out["main"]["aug_real"] = stream.augment(trainer, batch)
    if phase.reg and phase.net == "G":
        n = batch // trainer.loss.pl_batch_shrink
        g = stream.g_call(trainer)
        (_, pl_noise), = stream.take(1)
        out["reg"] = dict(z=z[:n], g=g, pl_noise=np.transpose(pl_noise, (0, 2, 3, 1)))
    if phase.reg and phase.net == "D" and not phase.main:
        out["reg"] = dict(aug_real=stream.augment(trainer, batch))
    return out


def official_names(trainer: Trainer, state) -> dict[str, np.ndarray]:
    """G., D., G_ema. state dicts (parameters and buffers) of a training state."""
    out = {}
    for prefix, module, variables in (("G.", trainer.G, state.g), ("D.", trainer.D, state.d),
                                      ("G_ema.", trainer.G, state.g_ema)):
        out.update({prefix + k: v for k, v in to_official_state_dict(module, jax.device_get(variables)).items()})
    return out


def adam_names(opt_state) -> dict[str, np.ndarray]:
    """The Adam state as official '<name>/exp_avg', '/exp_avg_sq' and '/step' entries."""
    out = {}
    for field in ("exp_avg", "exp_avg_sq", "step"):
        leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(getattr(opt_state, field)))[0]
        for path, leaf in leaves:
            out[".".join(p.key for p in path) + "/" + field] = np.asarray(leaf)
    return out


def replay_iterations(path: str) -> list[dict[str, Any]]:
    """Runs every iteration of the file; per iteration: 'state' (official names), 'metrics',
    'pl_mean', 'augment_p', 'adam' ({'G': ..., 'D': ...} in official names)."""
    npz = np.load(path, allow_pickle=False)
    cfg = _json(npz, "meta/config")
    trainer, state = build_trainer(npz)
    stream = _DrawStream(npz)
    rampup = cfg["ema_rampup"]
    records = []
    for it, schedule in enumerate(_json(npz, "meta/schedule")):
        gen_z, gen_c = npz[f"it{it}/gen_z"], npz[f"it{it}/gen_c"].astype(np.float32)
        real = np.transpose(npz[f"it{it}/real_uint8"], (0, 2, 3, 1))
        real_c = npz[f"it{it}/real_c"].astype(np.float32)
        step = int(schedule["batch_idx"])
        draws = {phase.name: phase_draws(stream, trainer, phase, gen_z[trainer.phases.index(phase)])
                 for phase in trainer._phases_run(step)}
        labels = tuple(trainer.shard_batch(c) for c in gen_c)
        state, metrics = trainer.train_step(state, step, int(schedule["cur_nimg"]), trainer.shard_batch(real),
                                            trainer.shard_batch(real_c), labels, cfg["ema_kimg"],
                                            None if rampup is None else float(rampup), draws=draws)
        records.append(dict(state=official_names(trainer, state), metrics=jax.device_get(metrics),
                            pl_mean=float(state.pl_mean), augment_p=float(state.augment_p),
                            adam={"G": adam_names(state.g_opt), "D": adam_names(state.d_opt)}))
    if stream.next != len(stream.meta):
        raise ValueError(f"the replay used {stream.next} of the file's {len(stream.meta)} draws")
    return records


def replay_training(path: str) -> dict[str, np.ndarray]:
    """Final G., D., G_ema. parameters and buffers of the replayed run, plus 'augment_p' with augmentation."""
    npz = np.load(path, allow_pickle=False)
    final = replay_iterations(path)[-1]
    out = dict(final["state"])
    if _augment_config(_json(npz, "meta/config")).active:
        out["augment_p"] = np.float32(final["augment_p"])
    return out
