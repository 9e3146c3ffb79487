"""Forward-mode differentiation (jax.jvp) through generators built from official state dicts, on the
default convolution path of the backend: against central finite differences and against the VJP."""
import jax
import numpy as np
import pytest

from conftest import relative_error
from golden_nets import load_golden_network

# The differences cross leaky ReLU kinks, which bounds their agreement with the derivative by the step:
# measured on StyleGAN2 (tangents in all parameters, or in z), relative distance 0.12 / 0.086 at a step
# of 1e-2, 0.036 / 0.031 at 1e-3 and 0.018 / 0.011 at 3e-4, where float32 rounding is still smaller.
STEP = 3e-4
FD_TOL = 5e-2
# <jvp(t), u> = <t, vjp(u)>, relative to |jvp(t)| |u| (the sum cancels: single parameters contribute
# 20x the total): measured 7.0e-9 (StyleGAN2), 2.1e-9 (StyleGAN3-T) and 3.3e-9 (R3GAN, whose grouped
# convolutions take cpu_conv's JVP rule on CPU; finite differences 0.029).
ADJOINT_TOL = 1e-6


def _random_like(tree, seed: int):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_unflatten(treedef, [rng.standard_normal(np.shape(x)).astype(np.float32) for x in leaves])


def _dot(a, b) -> float:
    """The inner product of two pytrees, summed in float64."""
    return sum(float(np.vdot(np.asarray(x, np.float64), np.asarray(y, np.float64)))
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


@pytest.mark.parametrize("name", ["sg2_64_G.npz", "sg3t_64_G.npz", "r3gan_32_G.npz"])
def test_generator_jvp_matches_finite_differences_and_the_vjp(name):
    data, G, variables = load_golden_network(name)
    render = lambda params, z: G.apply({**variables, "params": params}, z, data["input/c"])
    primals = (variables["params"], data["input/z"])
    tangents = _random_like(primals, 0)
    images, tangent = jax.jit(lambda p, t: jax.jvp(render, p, t))(primals, tangents)

    shifted = lambda sign: jax.tree_util.tree_map(lambda p, t: p + sign * STEP * t, primals, tangents)
    step = jax.jit(lambda p: render(*p))
    assert relative_error(tangent, (step(shifted(1)) - step(shifted(-1))) / (2 * STEP)) < FD_TOL

    cotangent = _random_like(images, 1)
    pulled = jax.jit(lambda p, u: jax.vjp(render, *p)[1](u))(primals, cotangent)
    forward, backward = _dot(tangent, cotangent), _dot(tangents, pulled)
    scale = np.sqrt(_dot(tangent, tangent) * _dot(cotangent, cotangent))
    assert abs(forward - backward) < ADJOINT_TOL * scale
