"""bfloat16 blocks: the gradients of broadcast parameters (biases, styles, demodulation) sum in float32."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import relative_error

from stylegan_jax.networks.discriminator import Discriminator
from stylegan_jax.ops.bias_act import bias_act
from stylegan_jax.ops.modulated_conv2d import modulated_conv2d
from stylegan_jax.ops.modulated_conv2d_sg3 import modulated_conv2d as modulated_conv2d_sg3
from stylegan_jax.ops.precision import accumulation_dtype, scale_channels


def _normal(seed, shape, dtype=jnp.float32):
    return jax.random.normal(jax.random.key(seed), shape).astype(dtype)


def test_accumulation_dtype_widens_low_precision_only():
    assert accumulation_dtype(jnp.bfloat16) == jnp.float32
    assert accumulation_dtype(jnp.float16) == jnp.float32
    assert accumulation_dtype(jnp.float32) == jnp.float32


@pytest.mark.parametrize("act", ["linear", "lrelu"])
def test_bias_gradient_of_a_bfloat16_map_sums_in_float32(act):
    # A bfloat16 sum of these 2,048 cotangents per channel was 6.7% off; in float32 it is exact to rounding.
    x, cotangent = _normal(0, (8, 16, 16, 32), jnp.bfloat16), _normal(1, (8, 16, 16, 32), jnp.bfloat16)
    bias = _normal(2, (32,))
    y, vjp = jax.vjp(lambda b: bias_act(x, b, act=act), bias)
    assert y.dtype == jnp.bfloat16
    (grad,) = vjp(cotangent)
    y32, vjp32 = jax.vjp(lambda b: bias_act(x.astype(jnp.float32), b, act=act), bias)
    (expected,) = vjp32(cotangent.astype(jnp.float32))
    assert relative_error(grad, expected) < 1e-6
    assert relative_error(y, y32) < 4e-3  # one bfloat16 rounding of the output


def test_scale_channels_takes_per_channel_and_per_sample_factors():
    x = _normal(0, (2, 3, 3, 4), jnp.bfloat16)
    per_sample, per_channel = _normal(1, (2, 4)), _normal(2, (4,))
    wide = x.astype(jnp.float32)
    np.testing.assert_array_equal(scale_channels(x, per_sample),
                                  (wide * per_sample[:, None, None, :]).astype(jnp.bfloat16))
    np.testing.assert_array_equal(scale_channels(x, per_channel), (wide * per_channel).astype(jnp.bfloat16))


@pytest.mark.parametrize("op", ["stylegan2", "stylegan3"])
def test_style_gradient_of_a_bfloat16_modulated_conv_stays_near_float32(op):
    x, weight = _normal(0, (8, 16, 16, 32), jnp.bfloat16), _normal(1, (32, 32, 3, 3))
    styles, cotangent = _normal(2, (8, 32)) + 1, _normal(3, (8, 16, 16, 32))
    conv = {"stylegan2": lambda x, s: modulated_conv2d(x, weight, s, padding=1, fused_modconv=False),
            "stylegan3": lambda x, s: modulated_conv2d_sg3(x, weight, s, padding=1)}[op]
    grad = jax.grad(lambda s: jnp.sum(conv(x, s).astype(jnp.float32) * cotangent))(styles)
    expected = jax.grad(lambda s: jnp.sum(conv(x.astype(jnp.float32), s) * cotangent))(styles)
    assert relative_error(grad, expected) < 8e-3  # a bfloat16 sum over H x W gave 2.2e-2


def test_discriminator_bias_gradients_in_bfloat16_stay_near_float32():
    D = Discriminator(c_dim=0, img_resolution=16, img_channels=3, channel_base=1024, channel_max=32)
    images = _normal(3, (16, 16, 16, 3))
    variables = D.init(jax.random.key(0), images, None)
    grads = {dtype: jax.grad(lambda p: jnp.sum(D.clone(num_fp16_res=4, compute_dtype=dtype).apply(
        {**variables, "params": p}, images, None)))(variables["params"]) for dtype in (None, jnp.bfloat16)}
    errors = {jax.tree_util.keystr(path): relative_error(low, high) for (path, high), low in zip(
        jax.tree_util.tree_leaves_with_path(grads[None]), jax.tree_util.tree_leaves(grads[jnp.bfloat16]))
        if path[-1].key == "bias"}
    assert max(errors.values()) < 0.1, errors  # a bfloat16 sum gave 0.30 (b16.conv0) and 0.23 (b16.fromrgb)
