"""Parsing the textual arguments of the sampling tools: seed lists, 2-vectors and grid sizes."""
from __future__ import annotations

import math
import re
from typing import Sequence

MAX_SEED = 2 ** 32 - 1  # numpy.random.RandomState accepts seeds in [0, 2**32 - 1]

_RANGE = re.compile(r"^(\d+)-(\d+)$")
_GRID = re.compile(r"^(\d+)[x,](\d+)$")


def parse_range(text: str | Sequence[int]) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]: comma-separated non-negative integers and inclusive ranges."""
    if not isinstance(text, str):
        return [int(value) for value in text]
    values: list[int] = []
    for part in text.split(","):
        part = part.strip()
        match = _RANGE.match(part)
        if match:
            first, last = int(match.group(1)), int(match.group(2))
            if first > last:
                raise ValueError(f"range {part!r} is empty: its start is above its end")
            values.extend(range(first, last + 1))
        elif part.isdigit():
            values.append(int(part))
        else:
            raise ValueError(f"cannot parse {part!r} in {text!r}: expected numbers or ranges like '0-3,7'")
    return values


def parse_seeds(text: str | Sequence[int]) -> list[int]:
    """parse_range, checking that every seed is in [0, 2**32 - 1] like numpy's RandomState needs."""
    seeds = parse_range(text)
    if not seeds:
        raise ValueError("no seeds given")
    bad = [seed for seed in seeds if not 0 <= seed <= MAX_SEED]
    if bad:
        raise ValueError(f"seed {bad[0]} is out of range: seeds must be in [0, {MAX_SEED}]")
    return seeds


def parse_finite(text: str) -> float:
    """'0.7' -> 0.7; refuses nan and infinities."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"cannot parse {text!r} as a number") from None
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {text!r}")
    return value


def parse_vec2(text: str | Sequence[float]) -> tuple[float, float]:
    """'0.3,1' -> (0.3, 1.0)."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        if len(parts) == 2:
            return parse_finite(parts[0]), parse_finite(parts[1])
    except ValueError:
        pass
    raise ValueError(f"cannot parse {text!r} as a 2-vector 'x,y'")


def parse_grid(text: str | Sequence[int]) -> tuple[int, int]:
    """'4x3' or '4,3' -> (4, 3), the width and height of a grid (both at least 1)."""
    if isinstance(text, str):
        match = _GRID.match(text.strip())
        if not match:
            raise ValueError(f"cannot parse {text!r} as a grid size 'WxH'")
        width, height = int(match.group(1)), int(match.group(2))
    else:
        width, height = (int(v) for v in text)
    if width < 1 or height < 1:
        raise ValueError(f"grid size {width}x{height} must be at least 1x1")
    return width, height
