"""The training loop: data, steps, logging, sample grids, metrics and checkpoints of one run."""
from __future__ import annotations

import itertools
import json
import os
import signal
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh

from stylegan_jax import checkpoint, fileio
from stylegan_jax.convert import NETWORK_KEYS, load_official_pickle
from stylegan_jax.convert.state_dict import build_network
from stylegan_jax.data.config import normal_resolution
from stylegan_jax.images import image_grid, image_size, save_image, to_uint8
from stylegan_jax.networks import stylegan_xl
from stylegan_jax.networks.generation import generate
from stylegan_jax.training import config as config_lib
from stylegan_jax.training import narration
from stylegan_jax.training.monitor import Monitor
from stylegan_jax.training.progressive import ProgressiveTrainer
from stylegan_jax.train_state import TrainState
from stylegan_jax.training.projected_trainer import Guidance, ProjectedTrainer
from stylegan_jax.training.r3gan_trainer import R3GANTrainer
from stylegan_jax.training.stylegan_t_trainer import StyleGANTTrainer, text_towers
from stylegan_jax.training.trainer import LossConfig, OptimizerConfig, Trainer
from stylegan_jax.tree_shapes import shape_mismatches


class TrainingDiverged(RuntimeError):
    """Raised when too many consecutive iterations produced NaN/Inf losses or gradients."""


class _StopRequest:
    """Turns SIGTERM (e.g. a preempted spot TPU) or Ctrl-C into a request to checkpoint and exit;
    a second signal exits at once.

    With several processes the request is agreed on (any process's signal stops all of them at the
    same iteration) every `sync_interval` iterations, so that every process takes part in the save.
    """

    def __init__(self, sync_interval: int = 8):
        self.requested, self.signal_name = False, "SIGTERM"
        self.sync_interval = sync_interval
        try:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._handle)
        except ValueError:  # not the main thread (e.g. a notebook worker): no handler
            pass

    def _handle(self, signum, frame):
        del frame
        if self.requested:
            print(f"{signal.Signals(signum).name} again: exiting now, without waiting for the save", flush=True)
            os._exit(128 + signum)
        self.requested, self.signal_name = True, signal.Signals(signum).name

    def agreed(self, step: int) -> bool:
        """Whether every process should save and stop after iteration `step`."""
        if jax.process_count() == 1:
            return self.requested
        if step % self.sync_interval:
            return False
        from jax.experimental import multihost_utils

        return bool(np.any(multihost_utils.process_allgather(np.int32(self.requested))))


def _open_dataset(config, seed: int):
    from stylegan_jax.data import open_dataset

    tokenize = None
    if config.dataset.captions:
        from stylegan_jax.perceptual.clip_tokenizer import tokenize
    return open_dataset(config.dataset, seed=seed, batch_size=config_lib.data_batch_size(config), tokenize=tokenize,
                        process_index=jax.process_index(), process_count=jax.process_count())


def _take(batches, count: int) -> dict[str, np.ndarray]:
    """The next `count` batches of the dataset as one."""
    parts = [next(batches) for _ in range(count)]
    return parts[0] if count == 1 else {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def _resume_weights(state: TrainState, source: str, reshape_ok: bool = False) -> tuple[TrainState, list[str]]:
    """Copies G, D and G_ema weights of another run (workdir) or an official .pkl into `state`.

    With `reshape_ok` (a non-square network initialised from square weights), tensors whose shapes
    differ keep their fresh initialisation and are returned as 'NET path (theirs) -> (ours)'; names
    that differ are always an error.
    """
    if source.endswith(".pkl"):
        nets = {key: variables for key, (_, variables) in load_official_pickle(source).items()}
        missing = [key for key in NETWORK_KEYS if key not in nets]
        if missing:
            raise ValueError(f"config.resume: {source} holds no readable {', '.join(missing)} (the projected D of a "
                             "StyleGAN-XL or StyleGAN-T snapshot cannot be read: load its generator with generate/export)")
    else:
        nets = {key: checkpoint.load_network(source, which=key)[1] for key in NETWORK_KEYS}
    nets["D"] = _matching_rotation_head(nets["D"], state.d)
    reinitialised = []
    for key, old in (("G", state.g), ("D", state.d), ("G_ema", state.g_ema)):
        what = f"config.resume: {key} of {source}"
        if reshape_ok:
            _check_same_shapes(jax.tree_util.tree_map(lambda _: 0.0, nets[key]),
                               jax.tree_util.tree_map(lambda _: 0.0, old), what)  # names only
            reshaped = [f"{key} {problem}" for problem in shape_mismatches(nets[key], old)]
            reinitialised += [line.replace(" vs ", " -> ") for line in reshaped]
        else:
            _check_same_shapes(nets[key], old, what)
    state = state.replace(g=_placed_like(nets["G"], state.g), d=_placed_like(nets["D"], state.d),
                          g_ema=_placed_like(nets["G_ema"], state.g_ema))
    return state, reinitialised


def _placed_like(new, old):
    """`new`'s values with `old`'s dtypes and shardings (a leaf of another shape keeps `old`'s value).

    A host copy per leaf: loaded trees may share one array between layers (R3GAN's resampling
    kernels), and the donated training state must not hold one buffer twice.
    """
    return jax.tree_util.tree_map(
        lambda n, o: jax.device_put(np.array(n if np.shape(n) == o.shape else o, o.dtype, copy=True), o.sharding),
        new, old)


def _grown_from_stem(state: TrainState, config: ml_collections.ConfigDict) -> TrainState:
    """G and G_ema of a StyleGAN-XL superresolution stage: the stem run's G_ema (mapping, input and kept
    layers) with a fresh head, as the official SuperresGenerator builds itself from its stem."""
    x = config.xl
    stem_module, stem_variables = checkpoint.load_network(x.stem, which="G_ema")
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 2)
    _, grown = stylegan_xl.grow_from_stem(stem_module, stem_variables, int(x.head_layers), int(x.up_factor), key)
    grow = lambda old: {**old, **{name: _placed_like(grown[name], old[name]) for name in grown}}
    return state.replace(g=grow(state.g), g_ema=grow(state.g_ema))


def _matching_rotation_head(theirs: dict, ours: dict) -> dict:
    """Their D variables with our rotation head (SS-GAN): a head they lack starts fresh, one we lack is dropped."""
    params = {key: value for key, value in theirs["params"].items() if key != "rotation"}
    if "rotation" in ours["params"]:
        params["rotation"] = theirs["params"].get("rotation", ours["params"]["rotation"])
    return {**theirs, "params": params}


def _check_same_shapes(new, old, what: str) -> None:
    """Raises a ValueError naming the variables whose names or shapes differ from this config's."""
    problems = shape_mismatches(new, old)
    if problems:
        raise ValueError(f"{what} does not fit this config's network ({len(problems)} variable(s) differ, "
                         f"theirs vs ours): {'; '.join(problems[:3])}")


def _generator_labels(dataset, count: int, rng: np.random.Generator) -> np.ndarray:
    if dataset.info.c_dim == 0:
        return np.zeros((count, 0), np.float32)
    return dataset.sample_labels(count, rng).astype(np.float32)


def _local_slice(global_rows: np.ndarray) -> np.ndarray:
    """This process's contiguous share of rows drawn identically on every process."""
    share = global_rows.shape[0] // jax.process_count()
    return global_rows[jax.process_index() * share:(jax.process_index() + 1) * share]


def make_trainer(config: ml_collections.ConfigDict, G, D, mesh: Mesh | None = None) -> Trainer:
    """The Trainer of a config (losses, optimisers, augmentation, frozen D layers), on `mesh` or all devices."""
    common = dict(optim=OptimizerConfig(**config.optimizer), batch_size=config.batch_size, mesh=mesh,
                  augment=config_lib.augment_config(config), freeze_d=config.freeze_d)
    if config.model.arch == "r3gan":
        return R3GANTrainer(G, D, config_lib.r3gan_schedules(config), rotation=config_lib.rotation_config(config),
                            **common)
    if config.model.arch == "stylegan_t":
        t = config.text
        towers = text_towers(t.clip, tuple(t.clip_sizes), t.clip_weights, t.dino_weights, t.clip_weight)
        return StyleGANTTrainer(G, D, LossConfig(**config.loss), towers=towers, **common)
    if config.projected.backbones:
        p = config.projected
        guidance = Guidance(p.guidance_arch, p.guidance_weights, p.guidance_weight) if p.guidance_weight else None
        g_trainable = stylegan_xl.head_only(G, config.xl.train_input) if config.xl.stem else None
        return ProjectedTrainer(G, D, LossConfig(**config.loss), pl_start_nimg=int(p.pl_start_kimg * 1000),
                                guidance=guidance, g_trainable=g_trainable, **common)
    growth = config_lib.growth_schedule(config)
    if growth is not None:
        return ProgressiveTrainer(G, D, LossConfig(**config.loss), growth=growth,
                                  reset_optimizer=config.progressive.reset_optimizer, **common)
    return Trainer(G, D, LossConfig(**config.loss), **common)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
    """Trains (or resumes) the run in `workdir` until config.total_kimg; returns the final state."""
    config_lib.validate_config(config, jax.device_count())
    started = time.time()
    fileio.makedirs(workdir)
    monitor = Monitor(workdir)
    monitor.record(f"Config: {config.to_json(indent=2, sort_keys=True)}")
    monitor.log(narration.scanning_line(config.dataset))
    dataset = _open_dataset(config, config.seed)
    info = dataset.info
    monitor.log(narration.dataset_line(info, config.dataset.captions))
    g_spec, d_spec = config_lib.network_specs(config, info.c_dim, info.channels)
    monitor.log("Building the networks ...")
    G, D = build_network(*g_spec), build_network(*d_spec)
    trainer = make_trainer(config, G, D)

    manager = checkpoint.open_manager(workdir, config.max_to_keep)
    state = trainer.init_state(config.seed)
    monitor.log(narration.networks_line(config.model.arch, state.g, state.d))
    if manager.latest_step() is not None:
        state, _, damaged = checkpoint.restore_newest_intact(manager, state, trainer.replicated)
        for bad in damaged:
            monitor.log(f"Warning: checkpoint step {bad} is damaged (kept as {bad}.damaged); resuming from an older one")
        monitor.log(f"Resumed from step {int(state.step)} ({int(state.nimg) / 1e3:.3f} kimg, augment p "
                    f"{float(state.augment_p):.4f}) in {workdir}")
    elif config.xl.stem:
        state = _grown_from_stem(state, config)
        monitor.log(f"Grew G and G_ema from the stem {config.xl.stem} (its G_ema); only the new head trains")
    elif config.resume:
        non_square = isinstance(normal_resolution(config.dataset.resolution), tuple)
        state, reinitialised = _resume_weights(state, config.resume, reshape_ok=non_square)
        monitor.log(f"Initialised G, D and G_ema from {config.resume}")
        if reinitialised:
            monitor.log(f"config.resume: {len(reinitialised)} tensor(s) of another shape in this non-square network "
                        f"keep their fresh initialisation (theirs -> ours): {'; '.join(reinitialised)}")
    meta = dict(config=json.loads(config.to_json()), networks={"G": list(g_spec), "D": list(d_spec)},
                dataset=dict(name=info.name, identity=info.identity, num_images=info.num_images,
                             resolution=info.resolution, channels=info.channels, c_dim=info.c_dim))

    cols, rows = config_lib.grid_shape(config)
    grid_rng = np.random.default_rng(config.seed + 123)
    grid_z = grid_rng.standard_normal((cols * rows, G.z_dim)).astype(np.float32)
    grid_c = _generator_labels(dataset, cols * rows, grid_rng)
    render = jax.jit(lambda v, z, c: to_uint8(generate(G, v, z, c)))

    def snapshot(state: TrainState, step: int, nimg: int, stopping: bool) -> None:
        checkpoint.save(manager, state, {**meta, "step": step, "nimg": nimg})
        c = trainer.generator_conditioning(state, grid_c)
        images = np.asarray(render(state.g_ema, grid_z, c))  # every process takes part; one writes
        if jax.process_index() == 0:
            save_image(image_grid(images, cols, rows), fileio.join(workdir, f"fakes_kimg{nimg / 1000:09.3f}.png"))
        if config.metrics and stopping:
            monitor.log(f"Stop requested: skipped the metrics of step {step} ({', '.join(config.metrics)})")
        elif config.metrics:
            monitor.write_metrics(_run_metrics(config, G, state.g_ema, trainer.prompt_encoder(state)), nimg)

    step, nimg = int(state.step), int(state.nimg)
    data_batch = config_lib.data_batch_size(config)  # every iteration takes whole dataset batches
    batches = dataset.iterate(start_batch=nimg // data_batch * trainer.batches_per_step)
    local_batch = data_batch // jax.process_count()
    if step == 0 and jax.process_index() == 0:
        first = itertools.islice(dataset.iterate(start_batch=0), -(-cols * rows // local_batch))
        reals = np.concatenate([batch["image"] for batch in first])[:cols * rows]
        save_image(image_grid(reals, cols, rows), fileio.join(workdir, "reals.png"))
    stop = _StopRequest()
    if jax.process_count() > 1:
        from orbax.checkpoint import multihost

        trainer.compile_phases(state, (*image_size(info.resolution), info.channels), info.c_dim)
        render.lower(state.g_ema, grid_z, trainer.generator_conditioning(state, grid_c)).compile()
        multihost.sync_global_processes("stylegan_jax_compiled", timeout=3600)
    label_rng = lambda step: np.random.default_rng([config.seed, step])
    total_nimg = int(config.total_kimg * 1000)
    next_tick = nimg + int(config.tick_kimg * 1000)
    next_snapshot = nimg + int(config.snapshot_kimg * 1000)
    monitor.start(nimg)
    latest: dict[str, Any] = {}  # the last value of every metric, so lazy R1/PL show up at each tick
    first_step = step
    phase_names = ", ".join(phase.name for phase in trainer.phases if phase.main or phase.reg)
    monitor.log(f"Compiling the training phases ({phase_names}) and running the first iteration ...")
    try:
        while nimg < total_nimg:
            batch_size = trainer.step_batch_size(nimg)
            reals = [_take(batches, batch_size // data_batch) for _ in range(trainer.batches_per_step)]
            rng = label_rng(step)
            gen_c = tuple(trainer.shard_batch(_local_slice(_generator_labels(dataset, batch_size, rng)))
                          for _ in trainer.phases)
            state, metrics = trainer.train_step(
                state, step, nimg, tuple(trainer.shard_batch(batch["image"]) for batch in reals),
                tuple(trainer.shard_batch(batch["label"]) for batch in reals), gen_c,
                config.ema_kimg, config_lib.ema_rampup(config))
            latest.update(metrics)
            step, nimg = step + 1, nimg + batch_size
            if step == first_step + 1:
                jax.block_until_ready(metrics)
                monitor.log(f"First iteration done {time.time() - started:.0f} s after the start; a progress line "
                            f"follows every {config.tick_kimg:g} kimg")
            stopping = stop.agreed(step)
            if nimg >= next_tick or nimg >= total_nimg or stopping:
                next_tick += int(config.tick_kimg * 1000)
                worst = int(state.worst_streak)
                monitor.tick(nimg, latest, skipped=int(state.skipped))
                if worst >= config.max_nonfinite_steps:
                    raise TrainingDiverged(
                        f"{worst} consecutive iterations had NaN/Inf losses or gradients (limit "
                        f"config.max_nonfinite_steps={config.max_nonfinite_steps}); the parameters were never "
                        f"updated with them and the last checkpoint in {checkpoint.checkpoint_dir(workdir)} is intact")
            if nimg >= next_snapshot or nimg >= total_nimg or stopping:
                next_snapshot += int(config.snapshot_kimg * 1000)
                snapshot(state, step, nimg, stopping)
            if stopping:
                monitor.log(f"{stop.signal_name}: saved step {step} ({nimg / 1e3:.3f} kimg), exiting")
                break
        manager.wait_until_finished()
        if nimg >= total_nimg:
            monitor.log(narration.done_line(workdir, checkpoint.checkpoint_dir(workdir), step, nimg,
                                            time.time() - started))
    finally:  # also on divergence or an error: finish the checkpoint under way
        batches.close()  # frees the tf.data iterator now rather than at interpreter exit (a TF warning)
        try:
            manager.wait_until_finished()
        finally:
            monitor.close()
    return state


def _run_metrics(config, G, g_ema_vars, prompts) -> dict[str, Any]:
    from stylegan_jax.eval import MetricOptions, run_metrics
    from stylegan_jax.eval.inputs import dataset_source, generator_source

    # Host copies, placed on every device by the metric maps: generation and feature extraction are
    # sharded over all devices of all processes, and every process gets every row back.
    weights = {key: path or None for key, path in config.metric_weights.items()}
    options = MetricOptions(generator=generator_source(G, jax.device_get(g_ema_vars), prompts=prompts),
                            real=dataset_source(config.dataset),
                            seed=config.seed, inception_weights=weights["inception"],
                            lpips_weights=weights["lpips"], vgg16_weights=weights["vgg16"])
    return {record["metric"]: record["results"] for record in run_metrics(list(config.metrics), options)}
