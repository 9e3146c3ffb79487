"""ADA versus no augmentation on a small dataset: FID at every snapshot and the p curve.

    python benchmarks/ada_study.py prepare --utkface=../shared/datasets/utkface --out=/tmp/utk
    python -m stylegan_jax.main --config=configs/utkface32_ada_study.py:ada  --workdir=/tmp/study/ada
    python -m stylegan_jax.main --config=configs/utkface32_ada_study.py:none --workdir=/tmp/study/none
    python benchmarks/ada_study.py report --runs=/tmp/study/ada,/tmp/study/none --reference=/tmp/utk/reference

`prepare` writes 2,000 training faces and 10,000 other faces (the FID reference) at 32x32.
`report` computes FID (1,000 generated images of each snapshot's EMA generator against every
reference image) with `stylegan_jax.evaluate`, and prints a Markdown table of FID and augment p
per snapshot, and writes it to `ada_study.md` in the first run's folder.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

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


def _fid(run: pathlib.Path, step: int, reference: str, metric: str) -> float:
    out = run / f"{metric}_{pathlib.Path(reference).name}_step{step}.jsonl"
    if not out.exists():
        subprocess.run([sys.executable, "-m", "stylegan_jax.evaluate", f"--metrics={metric}", f"--workdir={run}",
                        f"--step={step}", f"--data={reference}", f"--out={out}"], check=True)
    record = json.loads(out.read_text().splitlines()[-1])
    return float(next(iter(record["results"].values())))


def report(runs: list[str], reference: str, metric: str, batch_size: int, every_kimg: int) -> str:
    """FID and p per snapshot (every `every_kimg` kimg) of every run, as a Markdown table."""
    rows = {}
    for run in map(pathlib.Path, runs):
        steps = sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
        curve = _augment_p_by_kimg(run)
        for step in steps:
            kimg = step * batch_size // 1000
            if kimg % every_kimg:
                continue
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
    rep.add_argument("--reference", required=True, help="folder of reference images")
    rep.add_argument("--metric", default="fid1k_full")
    rep.add_argument("--batch-size", type=int, default=32)
    rep.add_argument("--every-kimg", type=int, default=1, help="evaluate the snapshots at multiples of this")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.utkface, args.out, args.train, args.reference, args.resolution, args.seed)
    else:
        print(report(args.runs.split(","), args.reference, args.metric, args.batch_size, args.every_kimg))


if __name__ == "__main__":
    main()
