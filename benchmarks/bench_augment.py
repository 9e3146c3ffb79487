"""Times the ADA augmentation (compiled): forward and forward+backward (w.r.t. images), per resolution and p.

    python benchmarks/bench_augment.py [--pipes bgc] [--res 32,64,256] [--p 0,0.2,0.6] [--batch 32] [--runs 5]

`pad` is the largest official geometric pad of the benchmarked draws (key 1): the geometric stage
runs at the smallest static pad tier that covers it.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import print_header, print_row, time_compiled  # noqa: E402

from stylegan_jax.augment import augment, augment_spec, draw_random, params_from_draws  # noqa: E402


def _largest_pad(key: jax.Array, p: jax.Array, spec, shape: tuple[int, int, int, int]) -> str:
    batch, height, width, channels = shape
    params = params_from_draws(draw_random(key, spec, batch, channels, height, width), p, spec, shape)
    return str(int(jnp.max(params["geom_pad_lrtb"]))) if "geom_pad_lrtb" in params else "-"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipes", default="bgc")
    parser.add_argument("--res", default="32,64,256")
    parser.add_argument("--p", default="0,0.2,0.6")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    key = jax.random.key(1)
    print(f"{jax.devices()[0].platform}, batch {args.batch}")
    print_header(["pipe", "res", "p", "pad", "mode", "compile s", "ms / batch"])
    for res in (int(r) for r in args.res.split(",")):
        images = jax.random.uniform(jax.random.key(0), (args.batch, res, res, 3), jnp.float32, -1, 1)
        for pipe in args.pipes.split(","):
            spec = augment_spec(pipe)
            forward = lambda x, k, p, spec=spec: augment(x, k, p, spec)  # noqa: E731
            backward = jax.grad(lambda x, k, p, spec=spec: jnp.sum(augment(x, k, p, spec) ** 2))
            for p in (jnp.float32(v) for v in args.p.split(",")):
                pad = _largest_pad(key, p, spec, images.shape)
                for mode, fn in (("fwd", forward), ("fwd+bwd", backward)):
                    compile_s, ms = time_compiled(fn, images, key, p, runs=args.runs)
                    print_row([pipe, res, f"{float(p):g}", pad, mode, compile_s, ms])


if __name__ == "__main__":
    main()
