"""ADA versus no augmentation on a small dataset: FID at every snapshot and the p curve.

    python benchmarks/ada_study.py prepare --utkface=../shared/datasets/utkface --out=/tmp/utk
    python -m stylegan_jax.main --config=configs/utkface32_ada_study.py:ada  --workdir=/tmp/study/ada
    python -m stylegan_jax.main --config=configs/utkface32_ada_study.py:none --workdir=/tmp/study/none
    python benchmarks/ada_study.py report --runs=/tmp/study/ada,/tmp/study/none --reference=/tmp/utk/reference
    python benchmarks/ada_study.py overfit --runs=/tmp/study/ada,/tmp/study/none --train=/tmp/utk/train \
        --heldout=/tmp/utk/reference --every-kimg=20

`:ada,wide` / `:ada,auto` and their `:none` twins are the config's other variants: a wider D, or
R1's gamma from the official --cfg=auto rule. `prepare` writes 2,000 training faces and 10,000 other
faces (the FID reference) at 32x32.
`report` computes FID (1,000 generated images of each snapshot's EMA generator against every
reference image) with `stylegan_jax.evaluate`, and prints a Markdown table of FID and augment p
per snapshot, and writes it to `ada_study.md` in the first run's folder. Without `--reference` each
run is compared with its own training data, e.g. the R3GAN/StyleGAN2 study on the digits:

    python benchmarks/ada_study.py report --runs=/tmp/r3study/r3gan,/tmp/r3study/sg2 --every-kimg=5

`overfit` prints D's mean logit and mean logit sign on the training images and on as many held-out
images at each snapshot: the gap between the two grows as D memorises its training set.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
from typing import Callable

import numpy as np


def prepare(utkface: str, out: str, num_train: int, num_reference: int, resolution: int, seed: int) -> None:
    """Disjoint random training and reference subsets, Lanczos-resized to `resolution`."""
    from PIL import Image

    names = sorted(os.listdir(utkface))
    order = np.random.default_rng(seed).permutation(len(names))
    subsets = {"train": order[:num_train], "reference": order[num_train:num_train + num_reference]}
    for subset, indices in subsets.items():
        folder = pathlib.Path(out) / subset
        folder.mkdir(parents=True, exist_ok=True)
        for i, index in enumerate(indices):
            image = Image.open(os.path.join(utkface, names[index])).convert("RGB")
            image.resize((resolution, resolution), Image.LANCZOS).save(folder / f"{i:05d}.png")
        print(f"{len(indices)} images in {folder}")


def _augment_p_by_kimg(run: pathlib.Path) -> dict[int, float]:
    """augment/p of every tick, from the run's TensorBoard events, keyed by whole kimg."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"tensors": 0})
    events.Reload()
    if "augment/p" not in events.Tags().get("tensors", []):
        return {}
    return {e.step: float(np.asarray(tensor_util.make_ndarray(e.tensor_proto))) for e in events.Tensors("augment/p")}


def _snapshots(run: pathlib.Path, batch_size: int, every_kimg: int) -> list[tuple[int, int]]:
    """(step, whole kimg) of the run's checkpoints at multiples of `every_kimg` kimg."""
    steps = sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
    return [(step, kimg) for step in steps if (kimg := step * batch_size // 1000) % every_kimg == 0]


def _fid(run: pathlib.Path, step: int, reference: str | None, metric: str) -> float:
    out = run / f"{metric}_{pathlib.Path(reference).name if reference else 'dataset'}_step{step}.jsonl"
    if not out.exists():
        data = [f"--data={reference}"] if reference else []
        subprocess.run([sys.executable, "-m", "stylegan_jax.evaluate", f"--metrics={metric}", f"--workdir={run}",
                        f"--step={step}", *data, f"--out={out}"], check=True)
    record = json.loads(out.read_text().splitlines()[-1])
    return float(next(iter(record["results"].values())))


def report(runs: list[str], reference: str | None, metric: str, batch_size: int, every_kimg: int) -> str:
    """FID and p per snapshot (every `every_kimg` kimg) of every run, as a Markdown table."""
    rows = {}
    for run in map(pathlib.Path, runs):
        curve = _augment_p_by_kimg(run)
        for step, kimg in _snapshots(run, batch_size, every_kimg):
            rows.setdefault(kimg, {})[run.name] = (_fid(run, step, reference, metric), curve.get(kimg))
    names = [pathlib.Path(r).name for r in runs]
    lines = ["| kimg | " + " | ".join(f"{n} {metric} | {n} p" for n in names) + " |",
             "|---" * (1 + 2 * len(names)) + "|"]
    for kimg in sorted(rows):
        cells = []
        for name in names:
            fid, p = rows[kimg].get(name, (None, None))
            cells += ["-" if fid is None else f"{fid:.2f}", "-" if p is None else f"{p:.3f}"]
        lines.append(f"| {kimg} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    (pathlib.Path(runs[0]) / "ada_study.md").write_text(table + "\n")
    return table


def _load_images(folder: str, count: int) -> np.ndarray:
    """The first `count` images of a folder (sorted by name), NHWC float32 in [-1, 1]."""
    from PIL import Image

    from stylegan_jax.training.trainer import to_float_images

    files = sorted(pathlib.Path(folder).iterdir())[:count]
    return np.asarray(to_float_images(np.stack([np.asarray(Image.open(f)) for f in files])))


def logit_gap(d_logits: Callable[[np.ndarray], np.ndarray], train: np.ndarray, heldout: np.ndarray,
              batch: int) -> dict[str, float]:
    """D's mean logit and mean logit sign on training and held-out reals, and the gap of the mean logits:
    a D that memorises its training set scores it above unseen images (the ADA paper's figure 1b)."""
    def scores(images):
        return np.concatenate([np.ravel(d_logits(images[i:i + batch])) for i in range(0, len(images), batch)])

    s_train, s_heldout = scores(train), scores(heldout)
    return {"train": float(s_train.mean()), "heldout": float(s_heldout.mean()),
            "gap": float(s_train.mean() - s_heldout.mean()),
            "sign_train": float(np.sign(s_train).mean()), "sign_heldout": float(np.sign(s_heldout).mean())}


def overfitting(runs: list[str], train: str, heldout: str, count: int, batch_size: int, every_kimg: int) -> str:
    """`logit_gap` of every run's D at its snapshots (every `every_kimg` kimg), as a Markdown table."""
    import jax
    import jax.numpy as jnp

    from stylegan_jax import checkpoint

    count -= count % batch_size  # whole training batches: D's minibatch-stddev groups divide them
    train_images, heldout_images = _load_images(train, count), _load_images(heldout, count)
    lines = ["| run | kimg | D(train) | D(held-out) | gap | sign D(train) | sign D(held-out) |", "|---" * 7 + "|"]
    for run in map(pathlib.Path, runs):
        apply = None  # one compiled D per run: its snapshots share the architecture
        for step, kimg in _snapshots(run, batch_size, every_kimg):
            D, variables = checkpoint.load_network(str(run), step, "D")
            apply = apply or jax.jit(lambda v, x, D=D: D.apply(v, x, jnp.zeros((x.shape[0], D.c_dim), jnp.float32)))
            r = logit_gap(lambda x: np.asarray(apply(variables, x)), train_images, heldout_images, 8 * batch_size)
            lines.append(f"| {run.name} | {kimg} | {r['train']:.3f} | {r['heldout']:.3f} | {r['gap']:.3f} | "
                         f"{r['sign_train']:.3f} | {r['sign_heldout']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare")
    prep.add_argument("--utkface", required=True)
    prep.add_argument("--out", required=True)
    prep.add_argument("--train", type=int, default=2000)
    prep.add_argument("--reference", type=int, default=10000)
    prep.add_argument("--resolution", type=int, default=32)
    prep.add_argument("--seed", type=int, default=2026)
    rep = commands.add_parser("report")
    rep.add_argument("--runs", required=True, help="comma-separated workdirs")
    rep.add_argument("--reference", default=None, help="folder of reference images (default: each run's own dataset)")
    rep.add_argument("--metric", default="fid1k_full")
    rep.add_argument("--batch-size", type=int, default=32)
    rep.add_argument("--every-kimg", type=int, default=1, help="evaluate the snapshots at multiples of this")
    gap = commands.add_parser("overfit", help="D's logits on training against held-out reals per snapshot")
    gap.add_argument("--runs", required=True, help="comma-separated workdirs")
    gap.add_argument("--train", required=True, help="folder of the training images")
    gap.add_argument("--heldout", required=True, help="folder of other images of the same kind")
    gap.add_argument("--count", type=int, default=2000, help="images of each folder")
    gap.add_argument("--batch-size", type=int, default=32)
    gap.add_argument("--every-kimg", type=int, default=1)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.utkface, args.out, args.train, args.reference, args.resolution, args.seed)
    elif args.command == "overfit":
        print(overfitting(args.runs.split(","), args.train, args.heldout, args.count, args.batch_size,
                          args.every_kimg))
    else:
        print(report(args.runs.split(","), args.reference, args.metric, args.batch_size, args.every_kimg))


if __name__ == "__main__":
    main()
