"""Files of the sampling tools: seed-named PNGs, grid layouts and projection targets."""
from __future__ import annotations

import math
import os
import pathlib
from typing import Sequence

import numpy as np
import PIL.Image

from stylegan_jax.images import save_image


def save_seed_images(outdir: str | os.PathLike, seeds: Sequence[int], images: np.ndarray) -> list[pathlib.Path]:
    """Writes images[i] to outdir/seed{seeds[i]:04d}.png (creating outdir), like gen_images.py."""
    if len(seeds) != len(images):
        raise ValueError(f"{len(seeds)} seeds for {len(images)} images")
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = [outdir / f"seed{seed:04d}.png" for seed in seeds]
    for path, image in zip(paths, images):
        save_image(image, path)
    return paths


def grid_shape(count: int, cols: int | None = None) -> tuple[int, int]:
    """(cols, rows) of a grid for `count` images: `cols` columns, or near-square by default."""
    cols = max(1, math.ceil(math.sqrt(count))) if cols is None else cols
    return cols, max(1, math.ceil(count / cols))


def load_target(path: str | os.PathLike, resolution: int, channels: int = 3) -> np.ndarray:
    """Reads an image as uint8 [resolution, resolution, channels]: centre square crop, then Lanczos resize.

    Like the official projector, any aspect ratio is accepted (non-square images lose the sides of
    their longer dimension). Raises ValueError when the file is not a readable image, or when its
    centre square is smaller than `resolution` (it would have to be invented by upscaling).
    """
    try:
        with PIL.Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
    except (OSError, PIL.UnidentifiedImageError, ValueError) as e:
        raise ValueError(f"cannot read image {os.fspath(path)!r}: {e}") from e
    w, h = image.size
    s = min(w, h)
    if s < resolution:
        raise ValueError(f"target image {os.fspath(path)!r} is {w}x{h}: its centre square is smaller than the "
                         f"generator's {resolution}x{resolution} output; use a photo of at least that size")
    image = image.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2))
    image = image.resize((resolution, resolution), PIL.Image.LANCZOS)
    return np.asarray(image, np.uint8).reshape(resolution, resolution, channels)
