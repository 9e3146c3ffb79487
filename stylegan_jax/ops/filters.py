"""FIR filter helpers shared by the resampling ops."""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np

FilterLike = Union[None, float, Sequence[float], Sequence[Sequence[float]], np.ndarray]


def setup_filter(
    f: FilterLike,
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1.0,
    separable: bool | None = None,
) -> np.ndarray:
    """Prepares a float32 FIR filter: 1-D taps (separable) or a 2-D kernel, normalised to unit DC gain.

    `None` is the identity; a 1-D filter becomes separable when it has 8 or more taps (like the
    official helper) unless `separable` says otherwise; `gain` scales the overall signal magnitude.
    """
    f = np.asarray(1.0 if f is None else f, dtype=np.float32)
    if f.ndim not in (0, 1, 2):
        raise ValueError(f"filter must be a scalar, 1-D taps or a 2-D kernel, got shape {f.shape}")
    if f.size == 0:
        raise ValueError("filter must not be empty")
    if f.ndim == 0:
        f = f[np.newaxis]
    if separable is None:
        separable = f.ndim == 1 and f.size >= 8
    if f.ndim == 1 and not separable:
        f = np.outer(f, f)
    if f.ndim != (1 if separable else 2):
        raise ValueError(f"a separable filter must be 1-D, got shape {f.shape}")
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = np.flip(f, axis=tuple(range(f.ndim)))
    return (f * np.float32(gain ** (f.ndim / 2))).astype(np.float32)


def filter_size(f) -> tuple[int, int]:
    """Returns (width, height) of a 1-D (separable) or 2-D filter; (1, 1) for None."""
    if f is None:
        return 1, 1
    if f.ndim not in (1, 2):
        raise ValueError(f"filter must be 1-D or 2-D, got shape {tuple(f.shape)}")
    return int(f.shape[-1]), int(f.shape[0])


def parse_scaling(factor) -> tuple[int, int]:
    """Parses an up/down factor given as an int or [x, y] into positive ints (x, y)."""
    values = (factor, factor) if np.ndim(factor) == 0 else tuple(factor)
    if len(values) != 2:
        raise ValueError(f"scaling factor must be an int or [x, y], got {factor!r}")
    for v in values:
        if isinstance(v, bool) or not float(v).is_integer() or int(v) < 1:
            raise ValueError(f"scaling factors must be positive integers, got {factor!r}")
    return int(values[0]), int(values[1])


def parse_padding(padding) -> tuple[int, int, int, int]:
    """Parses padding given as an int, [x, y] or [x0, x1, y0, y1] into (x0, x1, y0, y1)."""
    values = (padding,) if np.ndim(padding) == 0 else tuple(padding)
    if len(values) == 1:
        values = values * 4
    elif len(values) == 2:
        values = (values[0], values[0], values[1], values[1])
    if len(values) != 4:
        raise ValueError(f"padding must be an int, [x, y] or [x0, x1, y0, y1], got {padding!r}")
    for v in values:
        if isinstance(v, bool) or not float(v).is_integer():
            raise ValueError(f"padding must be integers, got {padding!r}")
    return tuple(int(v) for v in values)


def polyphase_taps(pad: int, stride: int, phase: int) -> tuple[int, int]:
    """(first kernel tap, input offset) of output phase `phase` of a correlation, padded by `pad` in front,
    over an input with stride - 1 zeros inserted between samples: that phase uses taps first, first +
    stride, ... of the kernel on the undilated input shifted by the offset."""
    first = (pad - phase) % stride
    return first, (phase + first - pad) // stride
