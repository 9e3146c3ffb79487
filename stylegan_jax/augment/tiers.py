"""Static reflect-pad tiers of the geometric stage, one picked per call from the batch's official pads.

Any tier at least as large as the official pads gives the same result (everything beyond the official
pad is zeroed), so a call only pays for the smallest one that covers its pads.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

MIN_PAD = 8  # covers the p = 0 pad (MARGIN = 6) and float noise of 90-degree turns
TIER_FRACTIONS = (1 / 4, 1 / 2, 3 / 4, 1)  # of the clamp (H-1, W-1)


def pad_tiers(height: int, width: int) -> tuple[tuple[int, int], ...]:
    """Ascending static (pad_y, pad_x) tiers: MIN_PAD, then TIER_FRACTIONS of the clamp, the last (H-1, W-1)."""
    tiers = []
    for fraction in (0,) + TIER_FRACTIONS:
        tier = tuple(min(n - 1, max(MIN_PAD, math.ceil(fraction * (n - 1)))) for n in (height, width))
        if tier not in tiers:
            tiers.append(tier)
    return tuple(tiers)


@jax.custom_batching.custom_vmap
def _shared(index: jax.Array) -> jax.Array:
    return index


@_shared.def_vmap
def _shared_rule(axis_size: int, in_batched: list[bool], index: jax.Array):
    # Under vmap every instance takes the largest tier any instance needs, so the switch stays a switch.
    del axis_size
    return (jnp.max(index) if in_batched[0] else index), False


def tier_index(pads: jax.Array, tiers: tuple[tuple[int, int], ...]) -> jax.Array:
    """Index of the smallest tier that covers the official pads (l, r, t, b); the largest one under vmap."""
    need_y, need_x = jnp.maximum(pads[2], pads[3]), jnp.maximum(pads[0], pads[1])
    too_small = [(need_y > pad_y) | (need_x > pad_x) for pad_y, pad_x in tiers]
    return _shared(jnp.sum(jnp.stack(too_small).astype(jnp.int32)))
