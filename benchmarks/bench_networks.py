"""Times generator forward, G/D forward+backward (compiled) at the 'small' and 'paper' settings and
compares with the official implementation's CPU times in ../shared/reference.

    python benchmarks/bench_networks.py [--preset small|paper|all] [--cases sg2_64,sg3t_64] [--dtype bfloat16] [--runs 9]
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import print_header, print_row, time_compiled  # noqa: E402

from stylegan_jax.convert.state_dict import build_network  # noqa: E402

REFERENCE = pathlib.Path(__file__).resolve().parents[2] / "shared" / "reference"
SG2_G = "training.networks_stylegan2.Generator"
SG3_G = "training.networks_stylegan3.Generator"
SG2_D = "training.networks_stylegan2.Discriminator"


def generator_spec(arch: str, res: int, preset: str) -> tuple[str, dict]:
    """The benchmark's generator: golden widths ('small') or the paper's."""
    common = dict(c_dim=0, img_resolution=res, img_channels=3, num_fp16_res=0, conv_clamp=256)
    if preset == "paper" and arch == "sg3r":
        # The official StyleGAN3-R configuration doubles the channel counts.
        widths = dict(z_dim=512, w_dim=512, channel_base=65536, channel_max=1024)
    elif preset == "paper":
        widths = dict(z_dim=512, w_dim=512, channel_base=32768, channel_max=512)
    elif arch == "sg3t":
        widths = dict(z_dim=128, w_dim=128, channel_base=1024, channel_max=32)
    else:
        widths = dict(z_dim=128, w_dim=128, channel_base=2048, channel_max=64)
    if arch == "sg2":
        return SG2_G, dict(mapping_kwargs={"num_layers": 8}, **widths, **common)
    extra = dict(conv_kernel=1, use_radial_filters=True) if arch == "sg3r" else {}
    return SG3_G, dict(mapping_kwargs={"num_layers": 2}, **widths, **common, **extra)


def discriminator_spec(res: int, preset: str) -> tuple[str, dict]:
    """The benchmark's discriminator (resnet, mbstd group 4)."""
    widths = dict(channel_base=32768, channel_max=512) if preset == "paper" else dict(channel_base=2048, channel_max=64)
    return SG2_D, dict(c_dim=0, img_resolution=res, img_channels=3, architecture="resnet", num_fp16_res=0,
                       conv_clamp=256, epilogue_kwargs={"mbstd_group_size": 4}, **widths)


def load_reference() -> dict:
    """{(case, preset, net, mode): record} of the official CPU timings."""
    table = {}
    for path in sorted(REFERENCE.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            table[(r["case"], r["preset"], r["net"], r["mode"])] = r
    return table


def count_params(variables) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(variables["params"]))


def bench_case(case: str, preset: str, batch: int, dtype: str | None, runs: int):
    """Yields (net, mode, params, compile_s, ms) rows for one case."""
    arch, res = case.split("_")
    res = int(res)
    key = jax.random.key(0)
    g_class, g_kwargs = generator_spec(arch, res, preset)
    if dtype:
        g_kwargs = dict(g_kwargs, num_fp16_res=4, compute_dtype=dtype)
    G = build_network(g_class, g_kwargs)
    gv = G.init({"params": key, "noise": key}, *G.example_inputs())
    z = jax.random.normal(key, (batch, G.z_dim))
    c = jnp.zeros((batch, 0))
    variants = [("G", {})] + ([("G_unfused", {"fused_modconv": False})] if arch == "sg2" else [])
    for net, kwargs in variants:
        fwd = lambda v, z: G.apply(v, z, c, **kwargs)
        yield (net, "fwd", count_params(gv), *time_compiled(fwd, gv, z, runs=runs))
        loss = lambda p, z: jnp.sum(G.apply({**gv, "params": p}, z, c, **kwargs))
        yield (net, "fwd_bwd", count_params(gv), *time_compiled(jax.grad(loss), gv["params"], z, runs=runs))
    if preset == "small" or arch == "sg2":
        D = build_network(*discriminator_spec(res, preset))
        img = jax.random.normal(key, (batch, res, res, 3))
        dv = D.init({"params": key}, img, c)
        yield ("D", "fwd", count_params(dv), *time_compiled(lambda v, x: D.apply(v, x, c), dv, img, runs=runs))
        dloss = lambda p, x: jnp.sum(D.apply({**dv, "params": p}, x, c))
        yield ("D", "fwd_bwd", count_params(dv), *time_compiled(jax.grad(dloss), dv["params"], img, runs=runs))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small", choices=["small", "paper", "all"])
    parser.add_argument("--cases", default="", help="comma-separated, e.g. sg2_64,sg3t_64 (default: all)")
    parser.add_argument("--dtype", default=None, help="compute dtype of the high-resolution layers, e.g. bfloat16")
    parser.add_argument("--runs", type=int, default=9, help="timed runs per row; the median is reported")
    args = parser.parse_args()
    reference = load_reference()
    presets = ["small", "paper"] if args.preset == "all" else [args.preset]
    cases = sorted({(k[0], k[1]) for k in reference if k[1] in presets})
    wanted = set(filter(None, args.cases.split(",")))
    print_header(["case", "preset", "net", "mode", "batch", "params", "official params", "compile s",
                  "ours ms", "official ms", "speed-up"])
    for case, preset in cases:
        if wanted and case not in wanted:
            continue
        batch = next(r["batch"] for k, r in reference.items() if k[:2] == (case, preset))
        for net, mode, params, compile_s, ms in bench_case(case, preset, batch, args.dtype, args.runs):
            ref = reference.get((case, preset, net, mode))
            ref_ms = ref["median_ms"] if ref else float("nan")
            ref_params = ref["params"] if ref else "-"
            print_row([case, preset, net, mode, batch, params, ref_params, compile_s, ms, ref_ms, ref_ms / ms])
    print(f"\ndevice: {jax.devices()[0].device_kind} x{jax.device_count()}, jax {jax.__version__}, "
          f"median of {args.runs} runs after compilation")


if __name__ == "__main__":
    main()
