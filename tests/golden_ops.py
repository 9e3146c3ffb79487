"""Access to the single-op golden cases of ../shared/golden/ops.npz, converted to NHWC."""
from __future__ import annotations

import json

import numpy as np

from conftest import GOLDEN


def nchw_to_nhwc(a: np.ndarray) -> np.ndarray:
    """Transposes a 4-D NCHW array to NHWC; other ranks pass through."""
    return np.transpose(a, (0, 2, 3, 1)) if a.ndim == 4 else a


def case_names(prefix: str) -> list[str]:
    """Names of the golden op cases starting with `prefix` (empty when ../shared is absent)."""
    path = GOLDEN / "ops.npz"
    if not path.exists():
        return [f"{prefix}<golden files absent>"]
    with np.load(path) as data:
        return sorted(n for n in json.loads(str(data["meta/cases"])) if n.startswith(prefix))
