"""Timing helpers shared by the benchmark scripts."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import jax


def time_compiled(fn: Callable, *args, runs: int = 5, min_seconds: float = 0.5) -> tuple[float, float]:
    """Returns (compile seconds, median milliseconds per call) of jax.jit(fn)(*args)."""
    jitted = jax.jit(fn)
    start = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(*args))
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    once = max(time.perf_counter() - start, 1e-6)
    calls = max(1, int(min_seconds / runs / once))
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(calls):
            out = compiled(*args)
        jax.block_until_ready(out)
        samples.append((time.perf_counter() - start) / calls * 1e3)
    return compile_s, statistics.median(samples)


def print_header(header: list[str]) -> None:
    """Prints the header of a Markdown table."""
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|", flush=True)


def print_row(row: list) -> None:
    """Prints one Markdown table row (floats with 2 decimals)."""
    print("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row) + " |", flush=True)
