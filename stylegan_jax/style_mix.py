"""Style mixing figure, like the official style_mixing.py.

    python -m stylegan_jax.style_mix --network=PATH --rows=85,100 --cols=55,821 --styles=0-6 --outdir=out

writes out/{row}-{col}.png for each mix, out/{seed}-{seed}.png for each seed, and out/grid.png.
--styles takes ws indices ('0-6') or the names coarse, middle and fine (whose extents
--coarse-end and --middle-end set).
"""
from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Sequence

from stylegan_jax.sampling import cli
from stylegan_jax.images import save_image
from stylegan_jax.sampling.parsing import parse_seeds
from stylegan_jax.sampling.render import DEFAULT_BATCH_SIZE
from stylegan_jax.networks.generation import require_w_space
from stylegan_jax.sampling.style_mixing import parse_styles, style_mixing, style_ranges


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags (official style_mixing.py spellings, plus a few)."""
    parser = cli.new_parser("style_mix", "Generate a style-mixing grid using a pretrained generator.")
    seeds = cli.arg_type(parse_seeds, "seeds")
    parser.add_argument("--rows", dest="row_seeds", type=seeds, required=True, help="seeds of the rows")
    parser.add_argument("--cols", dest="col_seeds", type=seeds, required=True, help="seeds of the columns")
    parser.add_argument("--styles", dest="col_styles", default="0-6",
                        help="ws taken from the columns: indices like '0-6' or coarse/middle/fine (default: 0-6)")
    parser.add_argument("--coarse-end", type=int, default=4, help="first ws index after 'coarse' (default: 4)")
    parser.add_argument("--middle-end", type=int, default=8, help="first ws index after 'middle' (default: 8)")
    parser.add_argument("--trunc", dest="truncation_psi", type=cli.FINITE_NUMBER, default=1.0, help="truncation psi (default: 1)")
    parser.add_argument("--class", dest="class_idx", type=int, help="class label (conditional networks only)")
    cli.add_noise_mode(parser)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="images per device batch")
    parser.add_argument("--outdir", required=True, metavar="DIR", help="where to save the output images")
    return parser


def style_mix(args: argparse.Namespace) -> None:
    """Runs the command."""
    G, variables = cli.load_network(args)
    require_w_space(G, "style mixing")
    ranges = style_ranges(G.num_ws, args.coarse_end, args.middle_end)
    col_styles = parse_styles(args.col_styles, G.num_ws, ranges)
    print(f"Mixing ws {col_styles} of {len(args.col_seeds)} column seeds into {len(args.row_seeds)} row seeds...")
    result = style_mixing(G, variables, args.row_seeds, args.col_seeds, col_styles,
                          truncation_psi=args.truncation_psi, class_idx=args.class_idx,
                          noise_mode=args.noise_mode, batch_size=args.batch_size)
    outdir = pathlib.Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    for (row, col), image in result.images.items():
        save_image(image, outdir / f"{row}-{col}.png")
    save_image(result.grid, outdir / "grid.png")
    print(f"Wrote {len(result.images)} images and grid.png to {outdir}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    return cli.run(build_parser(), style_mix, argv)


if __name__ == "__main__":
    sys.exit(main())
