"""Collects the metrics of several training runs into one Markdown table (e.g. the evolution ladder).

    python -m stylegan_jax.metrics_table runs/evo_a runs/evo_b runs/evo_e runs/evo_f [--metric=fid1k_full]

One row per snapshot kimg, one column per run (named by its folder), the metric's value at each
snapshot from the run's metrics.jsonl; '-' where a run has no value there.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from stylegan_jax.training.monitor import read_metrics


def metric_values(workdir: str, metric: str) -> dict[float, float]:
    """{kimg: value} of `metric` (its first result, e.g. fid1k_full's distance) in a run."""
    values = {}
    for record in read_metrics(workdir):
        if metric in record:
            results = record[metric]
            values[round(record["kimg"], 3)] = next(iter(results.values())) if isinstance(results, dict) else results
    return values


def markdown_table(runs: Sequence[str], metric: str) -> str:
    """The runs' values of `metric` by kimg as a Markdown table."""
    columns = {os.path.basename(os.path.normpath(run)): metric_values(run, metric) for run in runs}
    kimgs = sorted({kimg for values in columns.values() for kimg in values})
    lines = [f"| kimg | {' | '.join(columns)} |", "|---" * (len(columns) + 1) + "|"]
    for kimg in kimgs:
        cells = [f"{values[kimg]:.2f}" if kimg in values else "-" for values in columns.values()]
        lines.append(f"| {kimg:g} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m stylegan_jax.metrics_table", description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", metavar="WORKDIR", help="training run folders")
    parser.add_argument("--metric", default="fid1k_full", help="metric name (default: fid1k_full)")
    args = parser.parse_args(argv)
    try:
        print(markdown_table(args.runs, args.metric))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
