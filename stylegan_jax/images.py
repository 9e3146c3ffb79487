"""Image conventions shared by training, sampling and evaluation: uint8 conversion, grids, and writing image files."""
from __future__ import annotations

import math
import os
import pathlib
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from stylegan_jax import fileio


def image_size(resolution: int | Sequence[int] | str) -> tuple[int, int]:
    """(height, width) of a resolution given as one side, a [height, width] pair or "HxW" (e.g. "32x64").

    Both sides must be powers of two >= 4, so that the aspect ratio is a power of two too.
    """
    given = resolution
    if isinstance(resolution, str):
        parts = resolution.lower().split("x")
        if not 1 <= len(parts) <= 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"must be one side or HxW (e.g. 256 or 32x64), got {resolution!r}")
        resolution = [int(p) for p in parts] if len(parts) == 2 else int(parts[0])
    sides = (resolution, resolution) if np.ndim(resolution) == 0 else tuple(resolution)
    if len(sides) != 2 or any(int(s) != s or s < 4 or int(s) & (int(s) - 1) for s in sides):
        raise ValueError(f"must have sides that are powers of two >= 4 (one side or HxW), got {given!r}")
    return int(sides[0]), int(sides[1])


def aspect_factors(resolution: int | Sequence[int] | str) -> tuple[int, int]:
    """(height, width) of the resolution divided by its shorter side: (1, 1) square, (1, 2) wide, (2, 1) tall."""
    height, width = image_size(resolution)
    short = min(height, width)
    return height // short, width // short


def short_side(resolution: int | Sequence[int] | str) -> int:
    """The shorter side of a resolution: the one that names the networks' blocks and sets their widths."""
    return min(image_size(resolution))


def to_uint8(images: jax.Array) -> jax.Array:
    """Generator output (about [-1, 1]) -> uint8 like the official tools: the value
    x * 127.5 + 128 clipped to [0, 255] and truncated (torch's cast), not rounded."""
    return jnp.floor(jnp.clip(images * 127.5 + 128, 0, 255)).astype(jnp.uint8)


def image_grid(images: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """Tiles uint8 NHWC images row by row into one [rows*H, cols*W, C] image (missing cells black)."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    if n > cols * rows:
        raise ValueError(f"{n} images do not fit a {cols}x{rows} grid")
    padded = np.zeros((cols * rows, h, w, c), images.dtype)
    padded[:n] = images
    return padded.reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)


def grid_shape(count: int, cols: int | None = None) -> tuple[int, int]:
    """(cols, rows) of a grid for `count` images: `cols` columns, or near-square by default."""
    cols = max(1, math.ceil(math.sqrt(count))) if cols is None else cols
    return cols, max(1, math.ceil(count / cols))


def save_image(image: np.ndarray, path: str | os.PathLike) -> None:
    """Writes one uint8 HWC image (1 or 3 channels) as PNG/JPEG by extension, locally or to gs://."""
    image = np.asarray(image)
    picture = Image.fromarray(image[:, :, 0] if image.shape[-1] == 1 else image)
    if not fileio.is_remote(path):
        picture.save(path)
        return
    image_format = Image.registered_extensions().get(os.path.splitext(os.fspath(path))[1].lower())
    if image_format is None:
        raise ValueError(f"cannot tell the image format of {path} from its extension")
    with fileio.open_file(path, "wb") as f:
        picture.save(f, format=image_format)


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
