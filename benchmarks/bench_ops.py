"""Times each op (compiled) forward and forward+backward at a realistic size and prints a table.

    python benchmarks/bench_ops.py [--batch 8] [--size 256] [--channels 128] [--dtype float32|bfloat16]
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import print_header, print_row, time_compiled  # noqa: E402

from stylegan_jax import ops  # noqa: E402
from stylegan_jax.ops.filter_design import design_lowpass_filter  # noqa: E402
from stylegan_jax.ops.filtered_lrelu import filtered_lrelu  # noqa: E402
from stylegan_jax.ops.modulated_conv2d_sg3 import modulated_conv2d as modulated_conv2d_sg3  # noqa: E402


def cases(c: int):
    """(name, function of x, extra args) for every op; x is [N, S, S, C]."""
    key = jax.random.key(1)
    sg2 = ops.setup_filter([1, 3, 3, 1])
    sep = design_lowpass_filter(numtaps=12, cutoff=8, width=6, fs=64)
    w = jax.random.normal(key, (c, c, 3, 3))
    bias = jnp.zeros((c,))
    return [
        ("upfirdn2d up2 [1,3,3,1]", lambda x: ops.upsample2d(x, sg2)),
        ("upfirdn2d down2 [1,3,3,1]", lambda x: ops.downsample2d(x, sg2)),
        ("upfirdn2d up2 12-tap separable", lambda x: ops.upfirdn2d(x, sep, up=2, padding=[6, 5, 6, 5], gain=4)),
        ("filter2d 12-tap separable", lambda x: ops.filter2d(x, sep)),
        ("bias_act lrelu clamp", lambda x: ops.bias_act(x, bias, act="lrelu", clamp=256.0)),
        ("conv2d_resample up2 3x3", lambda x: ops.conv2d_resample(x, w, f=sg2, up=2, padding=1, flip_weight=False)),
        ("conv2d_resample down2 3x3", lambda x: ops.conv2d_resample(x, w, f=sg2, down=2, padding=1)),
        ("modulated_conv2d fused 3x3", lambda x: ops.modulated_conv2d(x, w, jnp.ones((x.shape[0], c)), padding=1)),
        ("modulated_conv2d unfused 3x3", lambda x: ops.modulated_conv2d(x, w, jnp.ones((x.shape[0], c)), padding=1,
                                                                      fused_modconv=False)),
        ("modulated_conv2d_sg3 3x3", lambda x: modulated_conv2d_sg3(x, w, jnp.ones((x.shape[0], c)), padding=1)),
        ("filtered_lrelu up2 down2", lambda x: filtered_lrelu(x, sep, sep, bias, up=2, down=2,
                                                              padding=[11, 10, 11, 10], clamp=256.0)),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()
    x = jax.random.normal(jax.random.key(0), (args.batch, args.size, args.size, args.channels)).astype(args.dtype)
    print_header(["op", "input", "compile s", "fwd ms", "fwd+bwd ms"])
    for name, fn in cases(args.channels):
        compile_s, fwd = time_compiled(fn, x)
        # A random cotangent: with sum() the gradient of a linear op would be constant-folded.
        probe = jax.random.normal(jax.random.key(1), jax.eval_shape(fn, x).shape, jnp.float32)
        grad = jax.grad(lambda x, probe: jnp.sum(fn(x).astype(jnp.float32) * probe))
        _, bwd = time_compiled(grad, x, probe)
        print_row([name, "x".join(map(str, x.shape)) + f" {args.dtype}", compile_s, fwd, bwd])
    print(f"\ndevice: {jax.devices()[0].device_kind}, jax {jax.__version__}, median of 5 runs after compilation")


if __name__ == "__main__":
    main()
