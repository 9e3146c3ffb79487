"""Drawing latents and labels the way the official metrics do."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def random_labels(key: jax.Array, labels: np.ndarray | None, c_dim: int, batch: int) -> jax.Array:
    """[batch, c_dim] conditioning: zeros-width for unconditional models, else random dataset labels."""
    if c_dim == 0:
        return jnp.zeros((batch, 0), jnp.float32)
    if labels is None or labels.ndim != 2 or labels.shape[1] != c_dim or labels.shape[0] == 0:
        shape = None if labels is None else labels.shape
        raise ValueError(f"a conditional generator (c_dim={c_dim}) needs the dataset's labels [N, {c_dim}], "
                         f"got {shape}")
    rows = jax.random.randint(key, (batch,), 0, labels.shape[0])
    return jnp.asarray(labels, jnp.float32)[rows]


def latents_and_labels(key: jax.Array, z_dim: int, c_dim: int, labels: np.ndarray | None,
                       batch: int) -> tuple[jax.Array, jax.Array]:
    """Standard-normal z [batch, z_dim] and matching labels c [batch, c_dim]."""
    key_z, key_c = jax.random.split(key)
    return jax.random.normal(key_z, (batch, z_dim)), random_labels(key_c, labels, c_dim, batch)
