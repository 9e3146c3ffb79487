"""Access to the single-op golden cases of ../shared/golden/ops.npz, converted to NHWC."""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np

from conftest import GOLDEN, relative_error

TOL = 1e-5  # relative error of an op's outputs and gradients against the official ones


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


def assert_grads_match(fn, inputs: dict, data, name: str, image_keys=("x",)) -> None:
    """Compares d sum(fn(*inputs) * cotangent) / d inputs (jitted) with golden case `name`'s gradients;
    `image_keys` name the NHWC inputs whose golden gradients are NCHW."""
    cotangent = nchw_to_nhwc(data[f"{name}/grad/cotangent"])
    keys = list(inputs)
    grads = jax.jit(jax.grad(lambda *a: jnp.sum(fn(*a) * cotangent), argnums=tuple(range(len(keys)))))(
        *[inputs[k] for k in keys])
    for key, grad in zip(keys, grads):
        expected = data[f"{name}/grad/{key}"]
        assert relative_error(grad, nchw_to_nhwc(expected) if key in image_keys else expected) < TOL, key
