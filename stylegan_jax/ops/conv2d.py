"""Plain and transposed 2-D convolutions (NHWC activations, OIHW weights), and the one place that
picks their forms.

GPUs and TPUs get XLA's own convolutions and gradients (`xla_conv`); the CPU backend gets
`cpu_conv`'s rewrites of the same functions, which XLA:CPU runs several times faster. `conv_path`
forces either one on any backend (the tests prove the accelerator forms at parity on the CPU).
The choice is made when a function is traced and is part of jit's cache key.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import jax
import jax.numpy as jnp

from stylegan_jax.ops import cpu_conv, xla_conv
from stylegan_jax.runtime import on_cpu_backend

CONV_PATHS = ("cpu", "generic")
_FORCED_PATH = jax.make_user_context(default_value=None)


@contextlib.contextmanager
def conv_path(path: str) -> Iterator[None]:
    """Within the block, convolutions are traced in the CPU rewrites ('cpu') or XLA's plain forms
    ('generic') whatever the backend."""
    if path not in CONV_PATHS:
        raise ValueError(f"conv path must be one of {CONV_PATHS}, got {path!r}")
    with _FORCED_PATH(path):
        yield


def uses_cpu_forms() -> bool:
    """Whether convolutions traced now take cpu_conv's forms: as forced by `conv_path`, else on the CPU backend."""
    forced = _FORCED_PATH.value
    return on_cpu_backend() if forced is None else forced == "cpu"


def _forms():
    return cpu_conv if uses_cpu_forms() else xla_conv


def conv2d(x: jax.Array, w: jax.Array, stride: int = 1, padding=((0, 0), (0, 0)), groups: int = 1,
           flip_weight: bool = True) -> jax.Array:
    """Grouped conv of NHWC `x` with OIHW weights `w`; flip_weight=True correlates (like torch)."""
    if not flip_weight:
        w = jnp.flip(w, axis=(2, 3))
    w = w.astype(x.dtype)
    padding = tuple((int(lo), int(hi)) for lo, hi in padding)
    return _forms().conv(x, w, stride, padding, groups)


def transposed_conv2d(x: jax.Array, w: jax.Array, stride: int, padding: tuple[int, int], groups: int,
                      flip_weight: bool) -> jax.Array:
    """Transposed (fractionally strided) grouped conv, the adjoint of a strided correlation.

    `w` is OIHW with O the output channels of this op; `padding` (rows, cols) is removed from each side.
    """
    if not flip_weight:
        w = jnp.flip(w, axis=(2, 3))
    w = w.astype(x.dtype)
    return _forms().transposed_conv(x, w, stride, tuple(int(p) for p in padding), groups)
