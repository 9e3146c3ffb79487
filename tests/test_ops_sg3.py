"""Parity of the StyleGAN3 ops (filter design, modulated conv, filtered leaky ReLU) with the
official implementation, plus properties (jit, vmap, bfloat16, an independent reference over
identity / separable / 2-D filters, second-order gradients) and input checks."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_golden, relative_error
from golden_ops import TOL, assert_grads_match, case_names, nchw_to_nhwc
from stylegan_jax.ops.filter_design import design_lowpass_filter
from stylegan_jax.ops.filtered_lrelu import filtered_lrelu
from stylegan_jax.ops.modulated_conv2d_sg3 import modulated_conv2d

# Measured relative error of bfloat16 against float32 on the golden inputs: ~2.6e-3 (filtered_lrelu)
# and ~2.8e-3 (modulated_conv2d), i.e. bfloat16's 8-bit mantissa; we allow 1e-2.
BF16_TOL = 1e-2


@pytest.fixture(scope="module")
def golden():
    data = load_golden("ops.npz")
    return data, json.loads(str(data["meta/cases"]))


def _lrelu_case(data, cases, name):
    """(x, b, keyword arguments) of a golden filtered_lrelu case, NHWC."""
    kw = dict(cases[name])
    kw["fu"] = None if kw.pop("fu_key") is None else data[f"filters/{kw['fu']}"]
    kw["fd"] = None if kw.pop("fd_key") is None else data[f"filters/{kw['fd']}"]
    return nchw_to_nhwc(data[f"{name}/in/x"]), data[f"{name}/in/b"], kw


# ---------------------------------------------------------------- filter design

@pytest.mark.parametrize("key", ["sep_up", "sep_up4", "rad"])
def test_design_lowpass_filter_matches_official(golden, key):
    data, cases = golden
    f = design_lowpass_filter(**cases["filters/design"][key])
    assert f.dtype == np.float32
    np.testing.assert_array_equal(f, data[f"filters/{key}"])


def test_design_lowpass_filter_identity_and_odd_radial():
    assert design_lowpass_filter(1, cutoff=4, width=2, fs=16) is None
    f = design_lowpass_filter(7, cutoff=3, width=2, fs=16, radial=True)  # has a tap at r = 0
    assert f.shape == (7, 7) and np.all(np.isfinite(f))
    np.testing.assert_allclose(f.sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(f, f.T)


@pytest.mark.parametrize("numtaps", [0, -3, 2.5, True])
def test_design_lowpass_filter_rejects_bad_numtaps(numtaps):
    with pytest.raises(ValueError, match="numtaps"):
        design_lowpass_filter(numtaps, cutoff=4, width=2, fs=16)


# ---------------------------------------------------------------- modulated conv

@pytest.mark.parametrize("name", case_names("modconv_sg3/"))
def test_modulated_conv2d_matches_official(golden, name, conv_path):
    data, cases = golden
    kw = cases[name]
    inputs = {"x": nchw_to_nhwc(data[f"{name}/in/x"]), "w": data[f"{name}/in/w"], "s": data[f"{name}/in/s"]}
    call = jax.jit(lambda x, w, s: modulated_conv2d(x, w, s, **kw))
    assert relative_error(call(**inputs), nchw_to_nhwc(data[f"{name}/out"])) < TOL
    assert_grads_match(call, inputs, data, name)


def test_modulated_conv2d_input_gain_shapes_jit_and_bf16(golden):
    data, _ = golden
    name = "modconv_sg3/k3_demod1_gainscalar"
    x, w, s = nchw_to_nhwc(data[f"{name}/in/x"]), data[f"{name}/in/w"], data[f"{name}/in/s"]
    expected = nchw_to_nhwc(data[f"{name}/out"])
    n, i = s.shape
    for gain in (np.full([i], 0.7, np.float32), np.full([n, i], 0.7, np.float32)):
        assert relative_error(modulated_conv2d(x, w, s, padding=2, input_gain=gain), expected) < TOL
    jitted = jax.jit(lambda x, w, s, g: modulated_conv2d(x, w, s, padding=[2, 2], input_gain=g))
    np.testing.assert_allclose(jitted(x, w, s, 0.7), modulated_conv2d(x, w, s, padding=2, input_gain=0.7),
                               rtol=1e-6, atol=1e-6)
    out = modulated_conv2d(x.astype(jnp.bfloat16), w, s, padding=2, input_gain=0.7)
    assert out.dtype == jnp.bfloat16
    assert relative_error(out.astype(jnp.float32), expected) < BF16_TOL


@pytest.mark.parametrize("x_shape, w_shape, s_shape, kw, match", [
    ((2, 8, 8), (5, 6, 3, 3), (2, 6), {}, "NHWC"),
    ((2, 8, 8, 4), (5, 6, 3, 3), (2, 6), {}, "channels"),
    ((2, 8, 8, 6), (5, 6, 3, 3), (3, 6), {}, "styles"),
    ((2, 8, 8, 6), (5, 6, 3, 3), (2, 6), {"input_gain": np.ones([5])}, "input_gain"),
    ((2, 8, 8, 6), (5, 6, 3, 3), (2, 6), {"padding": -1}, "padding"),
    ((2, 8, 8, 6), (5, 6, 3, 3), (2, 6), {"padding": [1, 1, 1]}, "padding"),
])
def test_modulated_conv2d_rejects_bad_input(x_shape, w_shape, s_shape, kw, match):
    with pytest.raises(ValueError, match=match):
        modulated_conv2d(jnp.zeros(x_shape), jnp.zeros(w_shape), jnp.zeros(s_shape), **kw)


# ---------------------------------------------------------------- filtered leaky ReLU

@pytest.mark.parametrize("name", case_names("filtered_lrelu/"))
def test_filtered_lrelu_matches_official(golden, name):
    data, cases = golden
    x, b, kw = _lrelu_case(data, cases, name)
    call = jax.jit(lambda x, b: filtered_lrelu(x, b=b, **kw))
    assert relative_error(call(x, b), nchw_to_nhwc(data[f"{name}/out"])) < TOL
    assert_grads_match(call, {"x": x, "b": b}, data, name)


def test_filtered_lrelu_jit_vmap_and_bf16(golden):
    data, cases = golden
    x, b, kw = _lrelu_case(data, cases, "filtered_lrelu/up2_down2_radial")
    expected = filtered_lrelu(x, b=b, **kw)
    jitted = jax.jit(lambda x, b, fu, fd: filtered_lrelu(x, fu, fd, b, up=2, down=2, padding=kw["padding"],
                                                         clamp=kw["clamp"]))
    np.testing.assert_allclose(jitted(x, b, kw["fu"], kw["fd"]), expected, rtol=1e-6, atol=1e-6)
    per_sample = jax.vmap(lambda xi: filtered_lrelu(xi[None], b=b, **kw)[0])(x)
    np.testing.assert_allclose(per_sample, expected, rtol=1e-6, atol=1e-6)
    out = filtered_lrelu(x.astype(jnp.bfloat16), b=b.astype(jnp.bfloat16), **kw)
    assert out.dtype == jnp.bfloat16
    assert relative_error(out.astype(jnp.float32), expected) < BF16_TOL


def _reference_resample(x, f, up, down, padding, gain, flip_filter):
    """upfirdn2d spelled out: zero insertion, pad/crop, one 2-D depthwise convolution, subsampling."""
    f = jnp.ones([1, 1]) if f is None else jnp.asarray(f)
    f = jnp.outer(f, f) if f.ndim == 1 else f
    f = f if flip_filter else jnp.flip(f, axis=(0, 1))
    n, h, w, c = x.shape
    x = jnp.zeros([n, h * up, w * up, c], x.dtype).at[:, ::up, ::up, :].set(x)
    if np.ndim(padding) == 0:
        padding = [padding] * 4
    elif len(padding) == 2:
        padding = [padding[0]] * 2 + [padding[1]] * 2
    px0, px1, py0, py1 = padding
    x = jax.lax.pad(x, 0.0, [(0, 0, 0), (py0, py1, 0), (px0, px1, 0), (0, 0, 0)])
    kernel = jnp.broadcast_to((f * gain)[:, :, None, None], f.shape + (1, c))
    x = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID", feature_group_count=c,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return x[:, ::down, ::down, :]


def _reference_filtered_lrelu(x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=np.sqrt(2),
                              slope=0.2, clamp=None, flip_filter=False):
    """The official reference semantics, written independently of our upfirdn2d and bias_act."""
    x = x + b
    x = _reference_resample(x, fu, up, 1, padding, up ** 2, flip_filter)
    x = jnp.where(x >= 0, x, x * slope) * gain
    x = x if clamp is None else jnp.clip(x, -clamp, clamp)
    return _reference_resample(x, fd, 1, down, 0, 1.0, flip_filter)


@pytest.mark.parametrize("fu_shape, fd_shape, up, down, padding, flip_filter", [
    (None, None, 2, 1, [1, 0, 2, -1], False),
    (None, None, 1, 2, [3, 2, 1, 0], True),
    ((5,), (4, 4), 3, 2, [-1, 2, 0, 3], False),
    ((3, 3), (5,), 2, 3, 4, True),
    ((4,), None, 1, 1, [2, -1], False),
    ((7,), (2, 3), 4, 4, [5, 6, 4, 7], False),
])
def test_filtered_lrelu_matches_independent_reference(fu_shape, fd_shape, up, down, padding, flip_filter):
    keys = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(keys[0], (2, 7, 9, 3))
    b = jax.random.normal(keys[1], (3,))
    fu = None if fu_shape is None else jax.random.uniform(keys[2], fu_shape)
    fd = None if fd_shape is None else jax.random.uniform(keys[3], fd_shape)
    kw = dict(up=up, down=down, padding=padding, gain=1.3, slope=0.1, clamp=1.5, flip_filter=flip_filter)

    def value_and_vjp(impl):
        out, vjp = jax.vjp(lambda x, b: impl(x, fu, fd, b, **kw), x, b)
        return (out, *vjp(jax.random.normal(keys[0], out.shape)))

    ours = jax.jit(lambda: value_and_vjp(filtered_lrelu))()
    reference = jax.jit(lambda: value_and_vjp(_reference_filtered_lrelu))()
    assert ours[0].shape == reference[0].shape
    for actual, wanted in zip(ours, reference):
        np.testing.assert_allclose(actual, wanted, rtol=1e-5, atol=1e-5)


def test_filtered_lrelu_second_order_gradients_match_reference(golden):
    """Gradient of a function of the input gradient (as path-length regularisation needs)."""
    data, cases = golden
    _, _, kw = _lrelu_case(data, cases, "filtered_lrelu/up2_down2_radial")
    keys = jax.random.split(jax.random.key(1), 3)
    x = jax.random.normal(keys[0], (1, 8, 8, 2))
    b = jax.random.normal(keys[1], (2,))

    def penalty_grad(impl):
        cotangent = jax.random.normal(keys[2], impl(x, b=b, **kw).shape)
        input_grad = lambda x: jax.grad(lambda x: jnp.sum(impl(x, b=b, **kw) * cotangent))(x)
        return jax.jit(jax.grad(lambda x: jnp.sum(jnp.square(input_grad(x)) * jnp.sin(x))))(x)

    np.testing.assert_allclose(penalty_grad(filtered_lrelu), penalty_grad(_reference_filtered_lrelu),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kw, match", [
    ({"up": 0}, "up"),
    ({"down": 1.5}, "down"),
    ({"fu": np.ones([2, 2, 2])}, "fu"),
    ({"fd": np.ones([1, 2, 2, 2])}, "fd"),
    ({"gain": 0.0}, "gain"),
    ({"slope": -0.1}, "slope"),
    ({"padding": [1, 2, 3]}, "padding"),
    ({"up": 2, "padding": -9}, "no output pixels"),
])
def test_filtered_lrelu_rejects_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        filtered_lrelu(jnp.zeros((1, 4, 4, 2)), **kw)


def test_filtered_lrelu_rejects_wrong_rank():
    with pytest.raises(ValueError, match="rank 4"):
        filtered_lrelu(jnp.zeros((4, 4, 2)))
