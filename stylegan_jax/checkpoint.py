"""Orbax checkpoints of a training run, and loading its generators for sampling.

A checkpoint is one step folder written atomically by Orbax (a half-written one is never listed)
with the items 'g', 'd', 'g_ema' (Flax variables), 'opt' (both Adam states), 'counters'
(step, nimg, PL mean, RNG key, non-finite counters, augmentation p and ADA's sign statistics) and 'meta' (JSON: config and network specs).
Restoring always passes an abstract target carrying the current mesh's shardings, so a run saved
on 8 devices resumes on 1 or 4.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding

from stylegan_jax import fileio, orbax_noise
from stylegan_jax.convert.state_dict import abstract_variables, build_network
from stylegan_jax.train_state import TrainState

CHECKPOINT_DIR = "checkpoints"
# What Orbax and tensorstore raise for a checkpoint whose files are truncated, missing or corrupt
# (Orbax wraps a failed array read in a bare Exception caused by one of these).
DAMAGED_ERRORS = (ValueError, OSError, KeyError, TypeError)
COUNTERS = ("step", "nimg", "pl_mean", "rng", "skipped", "streak", "worst_streak", "augment_p", "ada_sign_sum",
            "ada_sign_count")
NETWORK_ITEMS = {"G": "g", "D": "d", "G_ema": "g_ema"}


def checkpoint_dir(workdir: str) -> str:
    """Where a run keeps its checkpoints (an absolute path, as Orbax requires)."""
    return fileio.join(fileio.absolute(workdir), CHECKPOINT_DIR)


def _damage(error: BaseException | None) -> BaseException | None:
    """The first of an error reading a checkpoint and its causes that is one of DAMAGED_ERRORS, else None."""
    while error is not None and not isinstance(error, DAMAGED_ERRORS):
        error = error.__cause__
    return error


def open_manager(workdir: str, max_to_keep: int = 5, read_only: bool = False,
                 item_handlers: dict[str, Any] | None = None) -> ocp.CheckpointManager:
    """A CheckpointManager over the run's checkpoint folder with asynchronous saves (`item_handlers`: to
    read the metadata of those items)."""
    orbax_noise.silence()
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=not read_only,
                                           read_only=read_only)
    return ocp.CheckpointManager(checkpoint_dir(workdir), options=options, item_handlers=item_handlers)


def save(manager: ocp.CheckpointManager, state: TrainState, meta: dict[str, Any]) -> None:
    """Starts an asynchronous save of the whole training state at its step."""
    counters = {name: getattr(state, name) for name in COUNTERS}
    items = dict(g=state.g, d=state.d, g_ema=state.g_ema, opt={"g": state.g_opt, "d": state.d_opt},
                 counters=counters)
    args = {name: ocp.args.StandardSave(tree) for name, tree in items.items()}
    manager.save(int(meta["step"]), args=ocp.args.Composite(meta=ocp.args.JsonSave(meta), **args))


def _abstract(tree, sharding: NamedSharding):
    return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def restore(manager: ocp.CheckpointManager, template: TrainState, sharding: NamedSharding,
            step: int | None = None) -> tuple[TrainState, dict[str, Any]]:
    """Restores the latest (or given) complete checkpoint into the structure of `template`."""
    step = manager.latest_step() if step is None else step
    counters = {name: getattr(template, name) for name in COUNTERS}
    items = dict(g=template.g, d=template.d, g_ema=template.g_ema,
                 opt={"g": template.g_opt, "d": template.d_opt}, counters=counters)
    args = {name: ocp.args.StandardRestore(_abstract(tree, sharding)) for name, tree in items.items()}
    restored = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore(), **args))
    # Orbax returns optimiser-state containers as plain tuples: put the restored leaves back into
    # the template's structure.
    opt = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(items["opt"]),
                                       jax.tree_util.tree_leaves(restored.opt))
    state = template.replace(g=restored.g, d=restored.d, g_ema=restored.g_ema, g_opt=opt["g"], d_opt=opt["d"],
                             **restored.counters)
    return state, restored.meta


def restore_newest_intact(manager: ocp.CheckpointManager, template: TrainState,
                          sharding: NamedSharding) -> tuple[TrainState, dict[str, Any], list[int]]:
    """Restores the newest checkpoint that reads back whole, and lists the newer, damaged steps.

    A damaged step folder is renamed to '<step>.damaged' (kept for inspection, no longer listed),
    so that training continues from the intact one. ValueError when none is intact.
    """
    damaged = []
    for step in sorted(manager.all_steps(), reverse=True):
        try:
            state, meta = restore(manager, template, sharding, step)
        except Exception as e:  # noqa: BLE001 - Orbax raises bare Exceptions for damaged arrays
            if _damage(e) is None:
                raise
            damaged.append(step)
            continue
        if damaged and jax.process_index() == 0:
            for bad in damaged:
                fileio.rename(fileio.join(str(manager.directory), str(bad)),
                              fileio.join(str(manager.directory), f"{bad}.damaged"))
        manager.reload()
        return state, meta, damaged
    raise ValueError(f"every checkpoint in {manager.directory} is damaged (steps {sorted(damaged)})")


def _restore_items(workdir: str, step: int, args: ocp.args.Composite) -> Any:
    """manager.restore(step, args) of a read-only manager; a damaged checkpoint is a ValueError naming it."""
    manager = open_manager(workdir, read_only=True)
    try:
        return manager.restore(step, args=args)
    except Exception as e:  # noqa: BLE001 - Orbax raises bare Exceptions for damaged arrays
        damage = _damage(e)
        if damage is None:
            raise
        others = [s for s in manager.all_steps() if s != step]
        raise ValueError(f"checkpoint step {step} in {checkpoint_dir(workdir)} is damaged ({type(damage).__name__}); "
                         f"intact steps may be among {sorted(others)}") from None


def read_meta(workdir: str, step: int | None = None) -> tuple[int, dict[str, Any]]:
    """The step and metadata (config, network specs) of the latest or given checkpoint."""
    manager = open_manager(workdir, read_only=True)
    step = manager.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"no complete checkpoint in {checkpoint_dir(workdir)}")
    if step not in manager.all_steps():
        raise FileNotFoundError(f"checkpoint step {step} not found in {checkpoint_dir(workdir)}; "
                                f"complete steps: {sorted(manager.all_steps())}")
    return step, _restore_items(workdir, step, ocp.args.Composite(meta=ocp.args.JsonRestore())).meta


def load_network(workdir: str, step: int | None = None, which: str = "G_ema",
                 sharding: NamedSharding | None = None) -> tuple[nn.Module, dict]:
    """Loads one network ('G', 'D' or 'G_ema', default the EMA generator) of a training run."""
    if which not in NETWORK_ITEMS:
        raise ValueError(f"which must be one of {sorted(NETWORK_ITEMS)}, got {which!r}")
    step, meta = read_meta(workdir, step)
    class_name, init_kwargs = meta["networks"]["D" if which == "D" else "G"]
    module = build_network(class_name, init_kwargs)
    sharding = sharding or NamedSharding(jax.sharding.Mesh(jax.devices()[:1], ("data",)), jax.sharding.PartitionSpec())
    target = _abstract(abstract_variables(module), sharding)
    item = NETWORK_ITEMS[which]
    restored = _restore_items(workdir, step, ocp.args.Composite(**{item: ocp.args.StandardRestore(target)}))
    return module, restored[item]


def load_frozen(workdir: str, name: str, step: int | None = None) -> dict:
    """The frozen weights that D's 'frozen' collection keeps under `name` (e.g. StyleGAN-T's 'clip_text'),
    read from the latest (or given) checkpoint onto one device."""
    step, _ = read_meta(workdir, step)
    manager = open_manager(workdir, read_only=True, item_handlers={"d": ocp.StandardCheckpointHandler()})
    stored = manager.item_metadata(step)["d"]
    if name not in stored.get("frozen", {}):
        raise ValueError(f"the run in {workdir} keeps no frozen {name!r} weights (it has "
                         f"{sorted(stored.get('frozen', {}))})")
    sharding = NamedSharding(jax.sharding.Mesh(jax.devices()[:1], ("data",)), jax.sharding.PartitionSpec())
    target = _abstract(jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), dict(stored)),
                       sharding)
    return _restore_items(workdir, step, ocp.args.Composite(d=ocp.args.StandardRestore(target))).d["frozen"][name]


def load_generator(workdir: str, step: int | None = None, which: str = "G_ema") -> tuple[nn.Module, dict]:
    """Loads the EMA generator (or 'G') of a training run for sampling."""
    if which == "D":
        raise ValueError("load_generator loads 'G' or 'G_ema'; use load_network for 'D'")
    return load_network(workdir, step, which)
