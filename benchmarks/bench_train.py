"""Measures the training iteration of each preset the way a TPU/GPU user sees it: compile time of every
phase (cold, and again with JAX's persistent compilation cache warm), XLA's memory analysis, FLOPs per
image from XLA's cost analysis, then images/s and s/kimg over full iterations (Gmain, Greg, Dmain, Dreg
in their official proportions and the G EMA) against the official 8-GPU s/kimg scaled per device, the
achieved TFLOP/s and the MFU, and the config's ADA augmentation alone (forward and backward with respect
to one real batch at p 0.6) next to the iteration's time. Images are synthetic (no input pipeline); one
row per config.

    python benchmarks/bench_train.py --quick                       # the small configs (CI, CPU)
    python benchmarks/bench_train.py --configs sg2_1024,sg3t_1024 [--batch-per-device 4]
        [--compute-dtype bfloat16] [--remat] [--devices 8] [--periods 1] [--runs 3]
        [--peak-tflops 197] [--compile-only] [--conv-path generic] [--cache-dir DIR]

Presets: tiny (tests/tiny_config.py), quickstart, r3gan_digits32 (configs/study_digits32_r3gan.py),
sg2_256 (official paper256), sg2_1024 (config F), sg3t_256, sg3r_256, sg3t_1024, sg3r_1024 (official
configurations), r3gan_cifar10, r3gan_ffhq256 (R3GAN's presets, no official timing); see train_presets.py.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import math
import pathlib
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import print_header, print_row, time_compiled  # noqa: E402
from train_presets import OFFICIAL_GPUS, PEAK_TFLOPS, PRESETS, ROOT, Preset, peak_tflops  # noqa: E402

from stylegan_jax.augment import augment  # noqa: E402
from stylegan_jax.convert.state_dict import build_network  # noqa: E402
from stylegan_jax.ops.conv2d import CONV_PATHS, conv_path  # noqa: E402
from stylegan_jax.training import config as config_lib  # noqa: E402
from stylegan_jax.training.loop import make_trainer  # noqa: E402
from stylegan_jax.training.trainer import to_float_images  # noqa: E402

QUICK = ("tiny", "quickstart")
HEADER = ["config", "devices", "batch", "dtype", "remat", "img/s", "s/kimg", "official s/kimg V100 / A100",
          "phase ms", "compile s (cold)", "compile s (warm cache)", "args MB", "outputs MB", "temps MB",
          "peak MB", "GFLOP/img", "TFLOP/s", "MFU", "augment ms fwd+bwd (% of iteration)"]
AUGMENT_P = 0.6  # ADA's target for the sign of D's real logits: a p a run at its limit of data sees


def build_config(preset: Preset, batch_per_device: int | None, devices: int, compute_dtype: str | None,
                 remat: bool):
    """The preset's config at `batch_per_device` (default: the official per-GPU batch, or the small
    config's own batch spread over the devices; a smaller batch shrinks the path-length batch no further
    than one image per device), with the dtype and remat options."""
    config = preset.make_config()
    if batch_per_device is None:
        batch_per_device = config.batch_size // (devices if preset.small else OFFICIAL_GPUS)
    config.batch_size = batch_per_device * devices
    config.loss.pl_batch_shrink = min(config.loss.pl_batch_shrink, batch_per_device)  # path length on >= 1 image
    if compute_dtype:
        config.model.compute_dtype = compute_dtype
    config.model.remat = remat
    config.dataset.source, config.dataset.path = "digits", ""  # synthetic images: no dataset to check
    config_lib.validate_config(config, devices)
    return config


def build_trainer(config, devices: list):
    """The Trainer of a config on `devices`, for synthetic images without labels."""
    g_spec, d_spec = config_lib.network_specs(config, 0, config.dataset.channels)
    return make_trainer(config, build_network(*g_spec), build_network(*d_spec), Mesh(np.array(devices), ("data",)))


def compile_phases(trainer, state, images, labels) -> dict:
    """{phase: (seconds to lower and compile, Compiled)} for every phase that computes, and 'EMA'."""
    compiled, hyper = {}, trainer.hyper_inputs(0)
    for phase in trainer.phases:
        if phase.main or phase.reg:
            start = time.perf_counter()
            executable = trainer.phase_fns[phase.name].lower(state, images, labels, labels, hyper=hyper).compile()
            compiled[phase.name] = (time.perf_counter() - start, executable)
    flags = [jax.ShapeDtypeStruct((), jnp.bool_, sharding=trainer.replicated)] * len(compiled)
    start = time.perf_counter()
    executable = trainer.finish.lower(state, jnp.float32(0.5), flags).compile()
    compiled["EMA"] = (time.perf_counter() - start, executable)
    return compiled


def flops_of(executable) -> float:
    """XLA's cost-analysis FLOPs of one device's program (nan when the backend gives none)."""
    analysis = executable.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return float((analysis or {}).get("flops", math.nan))


def time_phases(trainer, state, images, labels, runs: int):
    """(state, {phase: median seconds}) of every phase that computes and the EMA, each run alone."""
    samples: dict[str, list[float]] = {}
    hyper = trainer.hyper_inputs(0)
    for _ in range(runs):
        oks = []
        for index, phase in enumerate(trainer.phases):
            if not (phase.main or phase.reg):
                continue
            start = time.perf_counter()
            state, metrics = trainer.phase_fns[phase.name](state, images, labels, labels, hyper=hyper)
            jax.block_until_ready(state)
            samples.setdefault(phase.name, []).append(time.perf_counter() - start)
            oks.append(metrics[f"finite/{phase.name}"])
        start = time.perf_counter()
        state, _ = trainer.finish(state, jnp.float32(0.5), oks)
        jax.block_until_ready(state)
        samples.setdefault("EMA", []).append(time.perf_counter() - start)
    return state, {name: float(np.median(times)) for name, times in samples.items()}


def time_iterations(trainer, state, images, labels, config, iterations: int) -> tuple:
    """(state, seconds per iteration) over `iterations` consecutive Trainer.train_step calls from step 0."""
    gen_c = tuple(labels for _ in trainer.phases)
    reals, real_c = (images,) * trainer.batches_per_step, (labels,) * trainer.batches_per_step
    start = time.perf_counter()
    for step in range(iterations):
        state, _ = trainer.train_step(state, step, step * config.batch_size, reals, real_c, gen_c,
                                      config.ema_kimg, config_lib.ema_rampup(config))
    jax.block_until_ready(state)
    return state, (time.perf_counter() - start) / iterations


def time_augment(trainer, images, runs: int) -> float | None:
    """Median ms of the trainer's augmentation, forward and backward with respect to `images` (one real
    batch, as sharded in training) at p AUGMENT_P; None when the config does not augment."""
    if not trainer.augment.active:
        return None
    spec = trainer.augment.spec
    loss = lambda x, key: jnp.sum(augment(to_float_images(x), key, jnp.float32(AUGMENT_P), spec) ** 2)
    _, ms = time_compiled(jax.grad(loss), images.astype(jnp.float32), jax.random.key(1), runs=runs)
    return ms


def schedule_period(trainer) -> int:
    """Iterations after which the phase pattern repeats (the lcm of the regularisation intervals)."""
    return int(np.lcm.reduce([phase.interval for phase in trainer.phases]))


def measure(preset: Preset, batch_per_device: int | None = None, devices: int | None = None,
            compute_dtype: str | None = None, remat: bool = False, runs: int = 3, periods: int = 1,
            peak: float | None = None, compile_only: bool = False, warm_cache: bool = True) -> dict:
    """One benchmark row of `preset` (see HEADER); `warm_cache` compiles a second time from the persistent
    cache, which must then be configured (main() does)."""
    chosen = jax.devices()[:devices or jax.device_count()]
    config = build_config(preset, batch_per_device, len(chosen), compute_dtype, remat)
    trainer = build_trainer(config, chosen)
    state = trainer.init_state(config.seed)
    res, channels, batch = config.dataset.resolution, config.dataset.channels, config.batch_size
    local = batch // jax.process_count()
    images = trainer.shard_batch(np.random.default_rng(0).integers(0, 256, (local, res, res, channels), np.uint8))
    labels = trainer.shard_batch(np.zeros((local, 0), np.float32))

    cold = compile_phases(trainer, state, images, labels)
    warm = {}
    if warm_cache:
        jax.clear_caches()
        trainer = build_trainer(config, chosen)
        warm = compile_phases(trainer, state, images, labels)
    intervals = {phase.name: phase.interval for phase in trainer.phases}
    weights = {name: 1 / intervals.get(name, 1) for name in cold}
    per_image = sum(flops_of(cold[name][1]) * weights[name] for name in cold) * len(chosen) / batch
    memory = {name: executable.memory_analysis() for name, (_, executable) in cold.items()}
    largest = max(memory, key=lambda name: memory[name].temp_size_in_bytes)
    row = dict(config=preset.name, devices=len(chosen), batch=batch, dtype=config.model.compute_dtype,
               remat=remat, compile_cold={name: s for name, (s, _) in cold.items()},
               compile_warm={name: s for name, (s, _) in warm.items()}, temps_phase=largest,
               args_mb=memory[largest].argument_size_in_bytes / 2 ** 20,
               outputs_mb=memory[largest].output_size_in_bytes / 2 ** 20,
               temps_mb=memory[largest].temp_size_in_bytes / 2 ** 20, gflop_per_image=per_image / 1e9)
    if preset.official:
        row["official"] = tuple(s * OFFICIAL_GPUS / len(chosen) for s in preset.official)
    if compile_only:
        return row

    # Warm-up: with --periods, one schedule period runs every phase and the EMA with every number of
    # phases that train_step uses; without, one run of each phase and the EMA as timed below.
    if periods:
        state, _ = time_iterations(trainer, state, images, labels, config, schedule_period(trainer))
    else:
        state, _ = time_phases(trainer, state, images, labels, 1)
    state, phase_s = time_phases(trainer, state, images, labels, runs)
    row["phase_ms"] = {name: s * 1e3 for name, s in phase_s.items()}
    seconds = sum(phase_s[name] * weights[name] for name in phase_s)
    if periods:
        state, seconds = time_iterations(trainer, state, images, labels, config, periods * schedule_period(trainer))
    row["images_per_s"] = batch / seconds
    augment_ms = time_augment(trainer, images, runs)
    if augment_ms is not None:
        row["augment_ms"], row["augment_share"] = augment_ms, augment_ms / (seconds * 1e3)
    row["tflops"] = per_image * row["images_per_s"] / 1e12
    peak = peak or peak_tflops(chosen[0].device_kind)
    if peak:
        row["mfu"] = row["tflops"] / (peak * len(chosen))
    peak_bytes = (chosen[0].memory_stats() or {}).get("peak_bytes_in_use")
    if peak_bytes is not None:
        row["peak_mb"] = peak_bytes / 2 ** 20
    return row


def _per_phase(values: dict, digits: int) -> str:
    return ", ".join(f"{name} {value:.{digits}f}" for name, value in values.items()) or "-"


def format_row(row: dict) -> list:
    """The HEADER cells of a measured row ('-' where not measured)."""
    images_per_s = row.get("images_per_s")
    official = row.get("official")
    return [row["config"], row["devices"], row["batch"], row["dtype"], "yes" if row["remat"] else "no",
            images_per_s if images_per_s else "-", 1000 / images_per_s if images_per_s else "-",
            f"{official[0]:.2f} / {official[1]:.2f}" if official else "-",
            _per_phase(row.get("phase_ms", {}), 0), _per_phase(row["compile_cold"], 1),
            _per_phase(row["compile_warm"], 1), row["args_mb"], row["outputs_mb"],
            f"{row['temps_mb']:.1f} ({row['temps_phase']})", row.get("peak_mb", "-"),
            *(f"{row[key]:.3g}" if key in row else "-" for key in ("gflop_per_image", "tflops", "mfu")),
            f"{row['augment_ms']:.1f} ({row['augment_share']:.0%})" if "augment_ms" in row else "-"]


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="", help=f"comma-separated, from {', '.join(PRESETS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help=f"the small configs only ({', '.join(QUICK)})")
    parser.add_argument("--batch-per-device", type=int, default=None)
    parser.add_argument("--compute-dtype", default=None, choices=["float32", "bfloat16"],
                        help="dtype of the num_fp16_res highest resolutions (default: the config's)")
    parser.add_argument("--remat", action="store_true", help="jax.checkpoint per synthesis/discriminator block")
    parser.add_argument("--devices", type=int, default=None, help="use the first N devices (default: all)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each phase; the median is reported")
    parser.add_argument("--periods", type=int, default=1,
                        help="full schedule periods timed with Trainer.train_step (0: compose the phase times)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak per device for the MFU "
                        "(default: " + "; ".join(f"{p} {t:g}" for p, t, _ in PEAK_TFLOPS) + ")")
    parser.add_argument("--compile-only", action="store_true", help="compile and analyse, do not run")
    parser.add_argument("--conv-path", default=None, choices=list(CONV_PATHS),
                        help="convolution forms to trace (default: the backend's; 'generic' on a CPU measures "
                             "the accelerator path, with about half the CPU forms' temporaries)")
    parser.add_argument("--cache-dir", default=None,
                        help="persistent compilation cache (default: a fresh one, removed at the end)")
    args = parser.parse_args()
    names = list(QUICK) if args.quick else [n for n in args.configs.split(",") if n] or list(PRESETS)
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        parser.error(f"unknown config(s) {unknown}; known: {', '.join(PRESETS)}")
    with tempfile.TemporaryDirectory(prefix="bench_train_jit_cache_") as fresh_cache:
        jax.config.update("jax_compilation_cache_dir", args.cache_dir or fresh_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        with conv_path(args.conv_path) if args.conv_path else contextlib.nullcontext():
            _print_table(names, args)


def _print_table(names: list[str], args: argparse.Namespace) -> None:
    device = jax.devices()[0]
    print(f"{datetime.date.today()}, commit {_commit()}, {device.device_kind} ({device.platform}) "
          f"x{args.devices or jax.device_count()}, jax {jax.__version__}; synthetic images; s/kimg over "
          f"{f'{args.periods} full schedule period(s)' if args.periods else 'the phase times in their proportions'}; "
          f"official s/kimg: 8 GPUs scaled to these devices; memory: the phase with the most temporaries"
          f"{f'; convolutions: the {args.conv_path} path' if args.conv_path else ''}\n", flush=True)
    print_header(HEADER)
    for name in names:
        row = measure(PRESETS[name], args.batch_per_device, args.devices, args.compute_dtype, args.remat, args.runs,
                      args.periods, args.peak_tflops, args.compile_only)
        print_row(format_row(row))


if __name__ == "__main__":
    main()
