"""Times R3GAN's generator and discriminator, forward and forward+backward (compiled), at the real
widths of the official presets: CIFAR10 (32x32) and FFHQ-64 (64x64).

    python benchmarks/bench_r3gan.py [--presets CIFAR10,FFHQ-64] [--batch 4] [--dtype bfloat16] [--runs 5]

With --dtype the presets' FP16Stages compute in that dtype (as the official code does in bfloat16);
without it everything is float32.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench_networks import count_params  # noqa: E402
from common import print_header, print_row, time_compiled  # noqa: E402

from stylegan_jax.convert.state_dict import build_network  # noqa: E402

# The official train.py presets' generators (widths 3/4 of [1024, ...], two blocks per stage).
PRESETS = {
    "CIFAR10": dict(NoiseDimension=64, WidthPerStage=[768] * 4, CardinalityPerStage=[96] * 4, BlocksPerStage=[2] * 4,
                    ExpansionFactor=2, FP16Stages=[-1, -2, -3], c_dim=0, img_resolution=32),
    "FFHQ-64": dict(NoiseDimension=64, WidthPerStage=[768] * 4 + [384], CardinalityPerStage=[96] * 4 + [48],
                    BlocksPerStage=[2] * 5, ExpansionFactor=2, FP16Stages=[-1, -2, -3, -4], c_dim=0, img_resolution=64),
}


def discriminator_kwargs(g_kwargs: dict) -> dict:
    """D's arguments as train.py derives them from G's: the lists reversed, FP16Stages shifted."""
    fp16 = g_kwargs["FP16Stages"]
    return dict(WidthPerStage=g_kwargs["WidthPerStage"][::-1],
                CardinalityPerStage=g_kwargs["CardinalityPerStage"][::-1],
                BlocksPerStage=g_kwargs["BlocksPerStage"][::-1], ExpansionFactor=g_kwargs["ExpansionFactor"],
                FP16Stages=[s + len(fp16) for s in fp16], c_dim=g_kwargs["c_dim"],
                img_resolution=g_kwargs["img_resolution"])


def bench_preset(name: str, batch: int, dtype: str | None, runs: int):
    """Yields (net, mode, params, compile_s, ms) rows for one preset."""
    key = jax.random.key(0)
    extra = {"compute_dtype": dtype} if dtype else {}
    G = build_network("training.networks.Generator", {**PRESETS[name], **extra})
    D = build_network("training.networks.Discriminator", {**discriminator_kwargs(PRESETS[name]), **extra})
    z, c = G.example_inputs(batch)
    img = jax.random.normal(key, D.example_inputs(batch)[0].shape)
    for net, module, x in (("G", G, jax.random.normal(key, z.shape)), ("D", D, img)):
        variables = jax.jit(module.init)(key, *module.example_inputs())
        fwd = lambda v, x: module.apply(v, x, c)
        yield net, "fwd", count_params(variables), *time_compiled(fwd, variables, x, runs=runs)
        # A random cotangent, as an argument: sum() would let XLA fold the linear layers' gradients,
        # and a captured constant would be constant-folded at compile time.
        cotangent = jax.random.normal(key, jax.eval_shape(fwd, variables, x).shape)
        loss = lambda p, x, t: jnp.sum(module.apply({**variables, "params": p}, x, c) * t)
        yield net, "fwd_bwd", count_params(variables), *time_compiled(
            jax.grad(loss), variables["params"], x, cotangent, runs=runs)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated, of " + ", ".join(PRESETS))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--dtype", default=None, help="compute dtype of the FP16Stages, e.g. bfloat16")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per row; the median is reported")
    args = parser.parse_args()
    print_header(["preset", "resolution", "net", "mode", "batch", "params", "compile s", "ms", "ms / image"])
    for name in args.presets.split(","):
        res = PRESETS[name]["img_resolution"]
        for net, mode, params, compile_s, ms in bench_preset(name, args.batch, args.dtype, args.runs):
            print_row([name, res, net, mode, args.batch, params, compile_s, ms, ms / args.batch])
    print(f"\ndevice: {jax.devices()[0].device_kind} x{jax.device_count()}, jax {jax.__version__}, "
          f"dtype {args.dtype or 'float32'}, median of {args.runs} runs after compilation")


if __name__ == "__main__":
    main()
