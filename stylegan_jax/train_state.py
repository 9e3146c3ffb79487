"""The complete training state as one pytree (what a checkpoint holds)."""
from __future__ import annotations

from typing import Any

import flax.struct
import jax


class TrainState(flax.struct.PyTreeNode):
    """Networks, EMA generator, optimiser states, counters, PL running mean and RNG key.

    `g`, `d` and `g_ema` are Flax variable dicts ({'params': ..., 'buffers': ...}); `step` counts
    training iterations (it is also the index of the next data batch) and `nimg` the images shown;
    `skipped` counts iterations with a non-finite loss or gradient and `streak` / `worst_streak`
    the current and longest runs of consecutive ones. `augment_p` is the augmentation probability
    (ADA adapts it), `ada_sign_sum` / `ada_sign_count` the signs of D's real logits accumulated since
    its last adjustment, so that a resumed run continues exactly where it stopped.
    """

    step: jax.Array
    nimg: jax.Array
    g: Any
    d: Any
    g_ema: Any
    g_opt: Any
    d_opt: Any
    pl_mean: jax.Array
    rng: jax.Array
    skipped: jax.Array
    streak: jax.Array
    worst_streak: jax.Array
    augment_p: jax.Array
    ada_sign_sum: jax.Array
    ada_sign_count: jax.Array
