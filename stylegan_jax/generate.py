"""Generates images from a generator, like the official gen_images.py.

    python -m stylegan_jax.generate --network=PATH --seeds=0-15 --trunc=0.7 --outdir=out [--grid]

writes out/seedNNNN.png per seed (and out/grid.png with --grid); --projected-w=FILE renders the
ws (or, for R3GAN, the z) of a projection (projected_w.npz) to out/projNN.png instead.
A text-conditional StyleGAN-T generator takes --prompt TEXT (repeatable: out/promptPP-seedNNNN.png, one grid
row per prompt), embedded by the CLIP text tower of its training run folder or of --clip FILE.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Sequence

import numpy as np

from stylegan_jax.images import grid_shape, image_grid, save_image, save_seed_images
from stylegan_jax.sampling import cli, prompts
from stylegan_jax.sampling.parsing import parse_grid, parse_seeds, parse_vec2
from stylegan_jax.sampling.render import DEFAULT_BATCH_SIZE, generate_images

AUTO_GRID = "auto"


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags (official gen_images.py spellings, plus a few)."""
    parser = cli.new_parser("generate", "Generate images using a pretrained generator.")
    parser.add_argument("--seeds", type=cli.arg_type(parse_seeds, "seeds"), help="seeds, e.g. '0,1,4-6'")
    parser.add_argument("--trunc", dest="truncation_psi", type=cli.FINITE_NUMBER, default=1.0, help="truncation psi (default: 1)")
    parser.add_argument("--trunc-cutoff", dest="truncation_cutoff", type=int,
                        help="truncate only the first N ws (default: all)")
    parser.add_argument("--class", dest="class_idx", type=int, help="class label (conditional networks only)")
    parser.add_argument("--prompt", dest="prompts", action="append", metavar="TEXT",
                        help="caption for a text-conditional StyleGAN-T generator (repeatable)")
    cli.add_clip_flags(parser)
    cli.add_noise_mode(parser)
    parser.add_argument("--translate", type=cli.arg_type(parse_vec2, "vec2"), default=(0.0, 0.0), metavar="VEC2",
                        help="translate XY-coordinate, e.g. '0.3,1' (StyleGAN3 only)")
    parser.add_argument("--rotate", type=cli.FINITE_NUMBER, default=0.0, metavar="ANGLE",
                        help="rotation angle in degrees (StyleGAN3 only)")
    parser.add_argument("--projected-w", metavar="FILE", help="render the ws 'w' [N, num_ws, w_dim] of this .npz")
    parser.add_argument("--grid", nargs="?", const=AUTO_GRID, metavar="WxH",
                        type=cli.arg_type(lambda text: text if text == AUTO_GRID else parse_grid(text), "grid"),
                        help="also write grid.png (default layout: near-square)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="images per device batch")
    parser.add_argument("--outdir", required=True, metavar="DIR", help="where to save the output images")
    return parser


def _read_projection(path: str) -> tuple[str, np.ndarray]:
    """('w', ws [N, num_ws, w_dim]) or ('z', [N, 1, z_dim]) of a projected_w.npz."""
    try:
        with np.load(path) as data:
            kind = "w" if "w" in data.files else "z"
            return kind, data[kind]
    except (KeyError, ValueError, OSError) as e:
        raise ValueError(f"{path!r} is not a projection result with a 'w' (or 'z') array: {e}") from e


def _grid_size(grid: str | tuple[int, int] | None, count: int) -> tuple[int, int] | None:
    size = grid_shape(count) if grid == AUTO_GRID else grid
    if size is not None and size[0] * size[1] < count:
        raise ValueError(f"{count} images do not fit a {size[0]}x{size[1]} grid")
    return size


def _generate_from_prompts(args: argparse.Namespace, G, variables, render: dict) -> tuple[np.ndarray, tuple | None]:
    """Each prompt's images of every seed, written to outdir; (all of them, prompt by prompt; the grid size)."""
    if args.seeds is None or args.projected_w is not None or args.class_idx is not None:
        raise ValueError("--prompt takes --seeds (not --projected-w or --class)")
    encoder = prompts.prompt_encoder(args.network, args.step, args.clip, args.clip_model)
    embeddings = prompts.prompt_conditioning(G, encoder, args.prompts)
    count = len(args.seeds) * len(args.prompts)
    grid = (len(args.seeds), len(args.prompts)) if args.grid == AUTO_GRID else _grid_size(args.grid, count)
    print(f"Generating {count} images for {len(args.prompts)} prompt(s)...")
    outdir = pathlib.Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    per_prompt = []
    for index, embedding in enumerate(embeddings):
        images = generate_images(G, variables, args.seeds, truncation_psi=args.truncation_psi,
                                 truncation_cutoff=args.truncation_cutoff, c=embedding, **render)
        prefix = "" if len(args.prompts) == 1 else f"prompt{index:02d}-"
        for seed, image in zip(args.seeds, images):
            save_image(image, outdir / f"{prefix}seed{seed:04d}.png")
        per_prompt.append(images)
    (outdir / "prompts.txt").write_text("".join(f"{prompt}\n" for prompt in args.prompts))
    return np.concatenate(per_prompt), grid


def generate(args: argparse.Namespace) -> None:
    """Runs the command."""
    if args.projected_w is None and args.seeds is None:
        raise ValueError("give --seeds (or --projected-w)")
    G, variables = cli.load_network(args)
    outdir = pathlib.Path(args.outdir)
    render = dict(noise_mode=args.noise_mode, translate=args.translate, rotate=args.rotate,
                  batch_size=args.batch_size)
    if args.prompts:
        images, grid = _generate_from_prompts(args, G, variables, render)
    elif prompts.is_text_conditional(G):
        raise ValueError("the generator is text-conditional (StyleGAN-T): give --prompt TEXT")
    elif args.projected_w is not None:
        kind, latents = _read_projection(args.projected_w)
        grid = _grid_size(args.grid, len(latents))
        if kind == "w":
            images = generate_images(G, variables, ws=latents, **render)
        else:
            images = generate_images(G, variables, z=latents[:, 0], class_idx=args.class_idx, **render)
        outdir.mkdir(parents=True, exist_ok=True)
        for idx, image in enumerate(images):
            save_image(image, outdir / f"proj{idx:02d}.png")
    else:
        grid = _grid_size(args.grid, len(args.seeds))
        print(f"Generating {len(args.seeds)} images...")
        images = generate_images(G, variables, args.seeds, truncation_psi=args.truncation_psi,
                                 truncation_cutoff=args.truncation_cutoff, class_idx=args.class_idx, **render)
        save_seed_images(outdir, args.seeds, images)
    if grid is not None:
        save_image(image_grid(images, *grid), outdir / "grid.png")
    print(f"Wrote {len(images)} images to {outdir}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    return cli.run(build_parser(), generate, argv)


if __name__ == "__main__":
    sys.exit(main())
