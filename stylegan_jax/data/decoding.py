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


def header_channels(file: BinaryIO) -> int:
    """Channels of the PNG/JPEG image in `file`, read from its header alone (raises one of DECODE_ERRORS)."""
    with _open(file) as image:
        return mode_channels(image.mode)


def to_training_array(image: PIL.Image.Image, resolution: int, channels: int) -> np.ndarray:
    """uint8 [resolution, resolution, channels]: converted to L or RGB, centre-cropped square, LANCZOS-resized."""
    image = image.convert("L" if channels == 1 else "RGB")
    width, height = image.size
    side = min(width, height)
    if width != height:
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if side != resolution:
        image = image.resize((resolution, resolution), PIL.Image.LANCZOS)
    array = np.asarray(image, np.uint8)
    return array[:, :, None] if channels == 1 else array
