"""Reading a folder of PNG/JPEG images (recursively) as uint8 NHWC batches."""
from __future__ import annotations

import os
import pathlib
from typing import Iterator

import numpy as np
import PIL.Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class ImageFolderError(ValueError):
    """A folder of images cannot be used: missing, empty, or holding an unreadable image."""


GRID_FILE = "grid.png"  # the overview that `generate --grid` writes next to the samples


def list_images(folder: str | os.PathLike) -> list[pathlib.Path]:
    """Sorted paths of the PNG/JPEG files under `folder`, at any depth, except the grid.png of `generate --grid`."""
    root = pathlib.Path(folder)
    if not root.is_dir():
        raise ImageFolderError(f"image folder {str(root)!r} does not exist")
    paths = sorted(p for p in root.rglob("*")
                   if p.suffix.lower() in IMAGE_SUFFIXES and p.name != GRID_FILE and p.is_file())
    if not paths:
        raise ImageFolderError(f"no PNG/JPEG images found under {str(root)!r}")
    return paths


def _read_rgb(path: pathlib.Path) -> np.ndarray:
    try:
        with PIL.Image.open(path) as image:
            return np.asarray(image.convert("RGB"), np.uint8)
    except (OSError, ValueError) as e:
        raise ImageFolderError(f"cannot read image {str(path)!r}: {e}") from None


def image_batches(paths: list[pathlib.Path], batch_size: int) -> Iterator[np.ndarray]:
    """uint8 [B, H, W, 3] batches of the images in order; a batch ends early where the image size changes."""
    batch: list[np.ndarray] = []
    for path in paths:
        image = _read_rgb(path)
        if batch and (len(batch) == batch_size or image.shape != batch[0].shape):
            yield np.stack(batch)
            batch = []
        batch.append(image)
    if batch:
        yield np.stack(batch)
