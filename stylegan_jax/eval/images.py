"""Image conventions of the metrics: uint8 NHWC batches."""
from __future__ import annotations

import numpy as np


def check_uint8_nhwc(images: np.ndarray, what: str = "images") -> np.ndarray:
    """Returns `images` as uint8 NHWC with 3 channels (grayscale repeated), or raises naming the problem."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"{what} must be uint8 in [0, 255], got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"{what} must be NHWC with 1 or 3 channels, got shape {images.shape}")
    if images.shape[0] == 0:
        raise ValueError(f"{what} is an empty batch")
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return images
