"""Times the ADA augmentation (compiled) at 256x256, batch 32: forward and forward+backward (w.r.t. images).

    python benchmarks/bench_augment.py [--pipes bgc,bgcfnc] [--res 256] [--batch 32] [--p 0.6] [--runs 5]
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import print_header, print_row, time_compiled  # noqa: E402

from stylegan_jax.augment import augment, augment_spec  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipes", default="bgc,bgcfnc")
    parser.add_argument("--res", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--p", type=float, default=0.6)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    images = jax.random.uniform(jax.random.key(0), (args.batch, args.res, args.res, 3), jnp.float32, -1, 1)
    key, p = jax.random.key(1), jnp.float32(args.p)
    print(f"{jax.devices()[0].platform}, batch {args.batch}, {args.res}x{args.res}, p={args.p}")
    print_header(["pipe", "mode", "compile s", "ms / batch"])
    for pipe in args.pipes.split(","):
        spec = augment_spec(pipe)
        forward = lambda x, k, p, spec=spec: augment(x, k, p, spec)  # noqa: E731
        backward = jax.grad(lambda x, k, p, spec=spec: jnp.sum(augment(x, k, p, spec) ** 2))
        for mode, fn in (("fwd", forward), ("fwd+bwd", backward)):
            compile_s, ms = time_compiled(fn, images, key, p, runs=args.runs)
            print_row([pipe, mode, compile_s, ms])


if __name__ == "__main__":
    main()
