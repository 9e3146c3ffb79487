"""Fused bias + activation + gain + clamp (the official `bias_act` semantics)."""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.ops.precision import accumulation_dtype


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def leaky_relu(x: jax.Array, alpha: float) -> jax.Array:
    """x for x > 0, else alpha * x (slope alpha at exactly 0, as torch)."""
    return jnp.where(x > 0, x, x * jnp.asarray(alpha, x.dtype))


@leaky_relu.defjvp
def _leaky_relu_jvp(alpha, primals, tangents):
    (x,), (dx,) = primals, tangents
    # `+ x * 0` keeps the slope a (zero-valued) function of x, as torch's leaky_relu_backward is: a
    # gradient of a gradient (R1, path length) then reaches the parameters before the activation
    # with zeros instead of not at all, which decides which parameters torch's Adam steps.
    slope = jnp.where(x > 0, jnp.ones((), x.dtype), jnp.asarray(alpha, x.dtype)) + x * 0
    return leaky_relu(x, alpha), slope * dx


class Activation(NamedTuple):
    func: Callable[[jax.Array, float], jax.Array]
    default_alpha: float
    default_gain: float


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, a: x, 0.0, 1.0),
    "relu": Activation(lambda x, a: jax.nn.relu(x), 0.0, float(np.sqrt(2))),
    "lrelu": Activation(lambda x, a: leaky_relu(x, a), 0.2, float(np.sqrt(2))),
    "tanh": Activation(lambda x, a: jnp.tanh(x), 0.0, 1.0),
    "sigmoid": Activation(lambda x, a: jax.nn.sigmoid(x), 0.0, 1.0),
    "elu": Activation(lambda x, a: jax.nn.elu(x), 0.0, 1.0),
    "selu": Activation(lambda x, a: jax.nn.selu(x), 0.0, 1.0),
    "softplus": Activation(lambda x, a: jax.nn.softplus(x), 0.0, 1.0),
    "swish": Activation(lambda x, a: jax.nn.sigmoid(x) * x, 0.0, float(np.sqrt(2))),
}


def bias_act(x: jax.Array, b: jax.Array | None = None, dim: int = -1, act: str = "linear",
             alpha: float | None = None, gain: float | None = None,
             clamp: float | None = None) -> jax.Array:
    """Adds bias `b` along axis `dim` (channels last by default), applies activation `act`,
    scales by `gain` (the activation's default when None) and clamps to [-clamp, clamp]. Computes in
    float32 (or wider) and returns x's dtype, so a bfloat16 block's bias gradient sums in float32.
    """
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; expected one of {sorted(ACTIVATIONS)}")
    if clamp is not None and clamp < 0:
        raise ValueError(f"clamp must be non-negative or None, got {clamp}")
    spec = ACTIVATIONS[act]
    alpha = spec.default_alpha if alpha is None else float(alpha)
    gain = spec.default_gain if gain is None else float(gain)
    dtype, x = x.dtype, x.astype(accumulation_dtype(x.dtype))
    if b is not None:
        axis = dim % x.ndim
        if b.ndim != 1 or b.shape[0] != x.shape[axis]:
            raise ValueError(f"bias of shape {b.shape} does not match axis {dim} of x {x.shape}")
        x = x + b.astype(x.dtype).reshape([-1 if i == axis else 1 for i in range(x.ndim)])
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * jnp.asarray(gain, x.dtype)
    if clamp is not None:
        x = jnp.clip(x, -clamp, clamp)
    return x.astype(dtype)
