"""Comparing the leaf names and shapes of two pytrees, for errors that name what differs."""
from __future__ import annotations

from typing import Any

import jax
import numpy as np


def leaf_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    """{path as jax.tree_util.keystr: shape} of every leaf (arrays or ShapeDtypeStructs)."""
    return {jax.tree_util.keystr(path): tuple(np.shape(leaf)) for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def shape_mismatches(actual: Any, expected: Any) -> list[str]:
    """'path (actual shape) vs (expected shape)' for each leaf missing on one side or shaped differently."""
    ours, theirs = leaf_shapes(actual), leaf_shapes(expected)
    return [f"{name} {ours.get(name, 'missing')} vs {theirs.get(name, 'missing')}"
            for name in sorted(ours.keys() | theirs.keys()) if ours.get(name) != theirs.get(name)]
