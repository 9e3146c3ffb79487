"""Latent interpolation video, like the official gen_video.py.

    python -m stylegan_jax.video --network=PATH --seeds=0-3 --output=lerp.mp4 [--grid=1x1]

loops through the seeds (cubic spline in W by default; --kind=linear in W or slerp in Z),
--w-frames frames per keyframe. Without imageio + imageio-ffmpeg the video is written as a GIF
next to --output. --still=FILE also writes a PNG whose rows interpolate between consecutive seeds.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Sequence

from stylegan_jax.sampling import cli
from stylegan_jax.images import save_image
from stylegan_jax.sampling.interpolation import KINDS, interpolation_grid, video_frames
from stylegan_jax.sampling.parsing import parse_grid, parse_seeds
from stylegan_jax.sampling.render import DEFAULT_BATCH_SIZE
from stylegan_jax.sampling.video_io import write_video


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags (official gen_video.py spellings, plus a few)."""
    parser = cli.new_parser("video", "Render a latent interpolation video using a pretrained generator.")
    parser.add_argument("--seeds", type=cli.arg_type(parse_seeds, "seeds"), required=True, help="keyframe seeds")
    parser.add_argument("--shuffle-seed", type=int, help="random seed to shuffle the keyframe order")
    parser.add_argument("--grid", type=cli.arg_type(parse_grid, "grid"), default=(1, 1), metavar="WxH",
                        help="grid width and height, e.g. '4x3' (default: 1x1)")
    parser.add_argument("--num-keyframes", type=int,
                        help="keyframes per cell (default: the number of seeds divided by the cell count)")
    parser.add_argument("--w-frames", type=int, default=120, help="frames between keyframes (default: 120)")
    parser.add_argument("--kind", choices=KINDS, default="cubic",
                        help="cubic or linear in W, or slerp in Z (default: cubic)")
    parser.add_argument("--fps", type=cli.FINITE_NUMBER, default=60, help="frames per second (default: 60)")
    parser.add_argument("--trunc", dest="truncation_psi", type=cli.FINITE_NUMBER, default=1.0, help="truncation psi (default: 1)")
    parser.add_argument("--class", dest="class_idx", type=int, help="class label (conditional networks only)")
    cli.add_noise_mode(parser)
    parser.add_argument("--still", metavar="FILE", help="also write a PNG of interpolation rows between the seeds")
    parser.add_argument("--still-steps", type=int, default=8, help="images per row of --still (default: 8)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="images per device batch")
    parser.add_argument("--output", required=True, metavar="FILE", help="output .mp4 (or .gif) file")
    return parser


def video(args: argparse.Namespace) -> None:
    """Runs the command."""
    G, variables = cli.load_network(args)
    common = dict(truncation_psi=args.truncation_psi, class_idx=args.class_idx, noise_mode=args.noise_mode,
                  batch_size=args.batch_size)
    if args.still is not None:
        still = interpolation_grid(G, variables, args.seeds, args.still_steps,
                                   kind="slerp" if args.kind == "slerp" else "linear", **common)
        pathlib.Path(args.still).parent.mkdir(parents=True, exist_ok=True)
        save_image(still, args.still)
        print(f"Wrote {args.still}")
    frames = video_frames(G, variables, args.seeds, grid=args.grid, num_keyframes=args.num_keyframes,
                          w_frames=args.w_frames, kind=args.kind, shuffle_seed=args.shuffle_seed, **common)
    print(f"Wrote {write_video(args.output, frames, fps=args.fps)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    return cli.run(build_parser(), video, argv)


if __name__ == "__main__":
    sys.exit(main())
