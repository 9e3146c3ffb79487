"""grouped_conv2d: XLA's grouped convolution, and its CPU form's values and derivatives up to second order."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import relative_error
from stylegan_jax.ops.grouped_conv import grouped_conv2d


def _reference(x, w, groups, padding):
    return jax.lax.conv_general_dilated(x, w, (1, 1), ((padding, padding),) * 2,
                                        dimension_numbers=("NHWC", "OIHW", "NHWC"), feature_group_count=groups,
                                        precision=jax.lax.Precision.HIGHEST)


@pytest.mark.parametrize("batch, size, in_channels, out_channels, groups, kernel, padding", [
    (2, 8, 12, 6, 3, 3, 1), (1, 5, 8, 8, 4, 1, 0), (2, 7, 6, 9, 3, 5, 2), (1, 6, 4, 4, 2, 2, 0),
    (2, 6, 24, 12, 12, 3, 1), (1, 5, 32, 16, 16, 1, 0)])  # few groups: a dense CPU form; many: per-tap
def test_matches_xla_grouped_convolution_with_gradients_of_gradients(batch, size, in_channels, out_channels, groups,
                                                                      kernel, padding):
    kx, kw, kc = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (batch, size, size, in_channels))
    w = jax.random.normal(kw, (out_channels, in_channels // groups, kernel, kernel))
    out = grouped_conv2d(x, w, groups, padding)
    cotangent = jax.random.normal(kc, out.shape)
    assert relative_error(out, _reference(x, w, groups, padding)) < 1e-6

    def penalty(conv, w):
        """An R1-like term: the squared input gradient, then differentiated by the weights."""
        grad_x = jax.grad(lambda x: jnp.sum(conv(x, w, groups, padding) * cotangent))(x)
        return jnp.sum(jnp.square(grad_x) * x)

    ours = jax.jit(jax.value_and_grad(lambda w: penalty(grouped_conv2d, w)))(w)
    expected = jax.jit(jax.value_and_grad(lambda w: penalty(_reference, w)))(w)
    for a, b in zip(ours, expected):
        assert relative_error(a, b) < 1e-5


def test_bfloat16_inputs_give_bfloat16_outputs_close_to_float32():
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 16))
    w = jax.random.normal(jax.random.key(1), (16, 4, 3, 3))
    out = grouped_conv2d(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), 4, 1)
    assert out.dtype == jnp.bfloat16
    assert relative_error(np.asarray(out, np.float32), _reference(x, w, 4, 1)) < 2e-2
