"""Decoding PNG/JPEG files, and turning a decoded image into a training image: channels, centre crop, resize."""
from __future__ import annotations

import zlib
from typing import BinaryIO

import numpy as np
import PIL.Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_FORMATS = ("PNG", "JPEG")

# What PIL raises on a broken, truncated or hostile image file.
DECODE_ERRORS = (OSError, ValueError, EOFError, SyntaxError, zlib.error, PIL.Image.DecompressionBombError)

_GRAYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def mode_channels(mode: str) -> int:
    """Channels a PIL image mode carries for training: 1 for the grayscale modes, 3 for all others."""
    return 1 if mode in _GRAYSCALE_MODES else 3


def _open(file: BinaryIO) -> PIL.Image.Image:
    try:
        return PIL.Image.open(file, formats=_FORMATS)
    except PIL.UnidentifiedImageError:
        raise PIL.UnidentifiedImageError("not a PNG or JPEG image") from None


def decode(file: BinaryIO) -> PIL.Image.Image:
    """The fully decoded PNG/JPEG image in `file` (raises one of DECODE_ERRORS when it cannot be read)."""
    with _open(file) as image:
        image.load()
    return image


def header(file: BinaryIO) -> tuple[int, tuple[int, int]]:
    """Channels and (width, height) of the PNG/JPEG image in `file`, from its header alone (raises one of DECODE_ERRORS)."""
    with _open(file) as image:
        return mode_channels(image.mode), image.size


def _height_width(resolution: int | tuple[int, int]) -> tuple[int, int]:
    return (resolution, resolution) if np.ndim(resolution) == 0 else (int(resolution[0]), int(resolution[1]))


def crop_size(size: tuple[int, int], resolution: int | tuple[int, int]) -> tuple[int, int]:
    """(width, height) of the largest centred region of an image of `size` (width, height) with the resolution's aspect."""
    (width, height), (res_h, res_w) = size, _height_width(resolution)
    if width * res_h > height * res_w:  # wider than the target aspect
        return height * res_w // res_h, height
    return width, width * res_h // res_w


def needs_upscaling(size: tuple[int, int], resolution: int | tuple[int, int], fit: str) -> bool:
    """Whether an image of `size` (width, height) must be enlarged to reach the resolution under `fit`."""
    height, width = _height_width(resolution)
    if fit == "letterbox":
        return size[0] < width and size[1] < height
    return crop_size(size, resolution)[0] < width


def to_training_array(image: PIL.Image.Image, resolution: int | tuple[int, int], channels: int,
                      fit: str = "crop") -> np.ndarray:
    """uint8 [height, width, channels]: converted to L or RGB, fitted to the resolution's aspect, LANCZOS-resized.

    fit='crop' keeps the largest centred region of the resolution's aspect ratio (the official
    square crop when square); fit='letterbox' resizes the whole image into it, centred on black.
    """
    height, width = _height_width(resolution)
    image = image.convert("L" if channels == 1 else "RGB")
    if fit == "letterbox":
        scale = min(width / image.width, height / image.height)
        inner = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        canvas = PIL.Image.new(image.mode, (width, height))
        canvas.paste(image.resize(inner, PIL.Image.LANCZOS) if inner != image.size else image,
                     ((width - inner[0]) // 2, (height - inner[1]) // 2))
        image = canvas
    else:
        crop_w, crop_h = crop_size(image.size, resolution)
        if (crop_w, crop_h) != image.size:
            left, top = (image.width - crop_w) // 2, (image.height - crop_h) // 2
            image = image.crop((left, top, left + crop_w, top + crop_h))
        if image.size != (width, height):
            image = image.resize((width, height), PIL.Image.LANCZOS)
    array = np.asarray(image, np.uint8)
    return array[:, :, None] if channels == 1 else array
