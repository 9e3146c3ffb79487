"""Parity of the StyleGAN2 ops with the official implementation, properties and input checks."""
import json

import jax
import jax.test_util
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_golden, relative_error
from golden_ops import TOL, assert_grads_match, case_names, nchw_to_nhwc
from stylegan_jax import ops
from stylegan_jax.ops import conv2d as conv2d_module, cpu_conv



@pytest.fixture(scope="module")
def golden():
    data = load_golden("ops.npz")
    return data, json.loads(str(data["meta/cases"]))


@pytest.mark.parametrize("name", case_names("upfirdn2d/"))
def test_upfirdn2d_matches_official(golden, name):
    data, cases = golden
    kw = cases[name]
    x = nchw_to_nhwc(data[f"{name}/in/x"])
    if "fn" in kw:
        fn = {"filter2d": ops.filter2d, "upsample2d": ops.upsample2d, "downsample2d": ops.downsample2d}[kw["fn"]]
        f = data[kw["f"]]
        call = jax.jit(lambda x: fn(x, f))
    else:
        f = data[kw["filter_key"]]
        call = jax.jit(lambda x: ops.upfirdn2d(x, f, up=kw["up"], down=kw["down"], padding=kw["padding"],
                                               flip_filter=kw["flip_filter"], gain=kw["gain"]))
    assert relative_error(call(x), nchw_to_nhwc(data[f"{name}/out"])) < TOL
    if f"{name}/grad/x" in data:
        assert_grads_match(call, {"x": x}, data, name)


@pytest.mark.parametrize("name", case_names("bias_act/"))
def test_bias_act_matches_official(golden, name):
    data, cases = golden
    kw = dict(cases[name])
    dim = kw.pop("dim")
    # Our layout is channels-last: move the official channel axis 1 to the end.
    to_ours = (lambda a: np.moveaxis(a, 1, -1)) if dim == 1 else (lambda a: a)
    inputs = {"x": to_ours(data[f"{name}/in/x"])}
    if f"{name}/in/b" in data:
        inputs["b"] = data[f"{name}/in/b"]
    axis = -1 if dim == 1 else dim
    call = jax.jit(lambda x, b=None: ops.bias_act(x, b, dim=axis, **kw))
    assert relative_error(call(**inputs), to_ours(data[f"{name}/out"])) < TOL
    if f"{name}/grad/x" in data:
        cotangent = to_ours(data[f"{name}/grad/cotangent"])
        grads = jax.jit(jax.grad(lambda *a: jnp.sum(call(*a) * cotangent), argnums=(0, 1)))(inputs["x"], inputs["b"])
        assert relative_error(grads[0], to_ours(data[f"{name}/grad/x"])) < TOL
        assert relative_error(grads[1], data[f"{name}/grad/b"]) < TOL


@pytest.mark.parametrize("name", case_names("conv2d_resample/"))
def test_conv2d_resample_matches_official(golden, name, conv_path):
    data, cases = golden
    kw = cases[name]
    resample = jax.jit(lambda x, w: ops.conv2d_resample(x, w, f=data[kw["f"]], up=kw.get("up", 1),
                                                        down=kw.get("down", 1), padding=kw["padding"],
                                                        flip_weight=kw.get("flip_weight", True)))
    out = resample(nchw_to_nhwc(data[f"{name}/in/x"]), data[f"{name}/in/w"])
    assert relative_error(out, nchw_to_nhwc(data[f"{name}/out"])) < TOL


@pytest.mark.parametrize("name", case_names("modconv_sg2/"))
def test_modulated_conv2d_matches_official(golden, name, conv_path):
    data, cases = golden
    kw = cases[name]
    noise = data.get(f"{name}/in/noise")
    noise = None if noise is None or noise.size == 0 else nchw_to_nhwc(noise)
    f = data[kw["resample_filter_key"]] if "resample_filter_key" in kw else None
    call = jax.jit(lambda x, weight, styles: ops.modulated_conv2d(
        x, weight, styles, noise=noise, up=kw["up"], down=kw["down"], padding=kw["padding"],
        resample_filter=f, demodulate=kw["demodulate"], flip_weight=kw.get("flip_weight", True),
        fused_modconv=kw["fused_modconv"]))
    inputs = {"x": nchw_to_nhwc(data[f"{name}/in/x"]), "weight": data[f"{name}/in/weight"],
              "styles": data[f"{name}/in/styles"]}
    assert relative_error(call(**inputs), nchw_to_nhwc(data[f"{name}/out"])) < TOL
    assert_grads_match(call, inputs, data, name)


def test_lrelu_slope_at_zero_is_alpha_like_torch():
    """At exactly zero the leaky ReLU's derivative is alpha (torch's leaky_relu backward), not 1."""
    x = jnp.array([-1.0, 0.0, 1.0])
    grad = jax.grad(lambda x: jnp.sum(ops.bias_act(x, act="lrelu", alpha=0.2, gain=1.0)))(x)
    np.testing.assert_array_equal(np.asarray(grad), np.float32([0.2, 0.2, 1.0]))


def test_normalize_2nd_moment_matches_official(golden):
    data, cases = golden
    name = "sg2/normalize_2nd_moment"
    out = ops.normalize_2nd_moment(data[f"{name}/in/x"], **cases[name])
    assert relative_error(out, data[f"{name}/out"]) < TOL


@pytest.mark.parametrize("name", case_names("sg2/mbstd"))
def test_minibatch_std_matches_official(golden, name):
    data, cases = golden
    out = ops.minibatch_std(nchw_to_nhwc(data[f"{name}/in/x"]), **cases[name])
    assert relative_error(out, nchw_to_nhwc(data[f"{name}/out"])) < TOL


# ---- properties -------------------------------------------------------------------------------

def _random_images(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def test_unit_filter_is_identity():
    x = _random_images((2, 7, 5, 3))
    np.testing.assert_array_equal(ops.upfirdn2d(x, None), x)
    np.testing.assert_array_equal(ops.upfirdn2d(x, [1.0]), x)


def test_up_then_down_preserves_band_limited_signal():
    # A slow sinusoid passes a [1,3,3,1] low-pass nearly untouched; compare away from the borders.
    yy, xx = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    x = np.sin(2 * np.pi * (xx / 32.0 + yy / 64.0)).astype(np.float32)[None, :, :, None]
    f = ops.setup_filter([1, 3, 3, 1])
    y = ops.downsample2d(ops.upsample2d(x, f), f)
    assert y.shape == x.shape
    assert relative_error(y[:, 4:-4, 4:-4], x[:, 4:-4, 4:-4]) < 0.05


def test_upfirdn2d_is_linear():
    f = ops.setup_filter([1, 3, 3, 1])
    a, b = _random_images((1, 8, 8, 2), 1), _random_images((1, 8, 8, 2), 2)
    run = lambda x: ops.upfirdn2d(x, f, up=2, down=1, padding=[2, 1, 2, 1], gain=4)
    np.testing.assert_allclose(run(2.0 * a - 3.0 * b), 2.0 * run(a) - 3.0 * run(b), rtol=1e-5, atol=1e-5)


def test_jit_and_eager_agree():
    f = ops.setup_filter([1, 3, 3, 1])
    x = _random_images((2, 8, 8, 4))
    run = lambda x: ops.bias_act(ops.upsample2d(x, f), jnp.ones(4), act="lrelu", clamp=2.0)
    np.testing.assert_allclose(jax.jit(run)(x), run(x), rtol=1e-6, atol=1e-6)


def test_gradients_match_finite_differences_in_float64():
    with jax.enable_x64(True):
        x = jnp.asarray(_random_images((1, 6, 6, 2), 3, np.float64))
        w = jnp.asarray(_random_images((3, 2, 3, 3), 4, np.float64))
        s = jnp.asarray(np.random.default_rng(5).uniform(0.5, 1.5, (1, 2)))
        f = np.array([1.0, 3.0, 3.0, 1.0])
        loss = lambda x, w, s: jnp.sum(jnp.sin(ops.modulated_conv2d(
            x, w, s, up=2, padding=1, resample_filter=np.outer(f, f) / 64, flip_weight=False)))
        jax.test_util.check_grads(loss, (x, w, s), order=1, modes=["rev"], eps=1e-6, atol=1e-7, rtol=1e-7)


@pytest.mark.parametrize("fused", [True, False])
def test_bfloat16_close_to_float32(fused):
    x = _random_images((2, 8, 8, 6))
    w = _random_images((5, 6, 3, 3), 1)
    s = _random_images((2, 6), 2) + 2.0
    f = ops.setup_filter([1, 3, 3, 1])
    run = lambda x: ops.modulated_conv2d(x, w, s, up=2, padding=1, resample_filter=f,
                                         flip_weight=False, fused_modconv=fused)
    y32 = run(x)
    y16 = run(x.astype(jnp.bfloat16))
    assert y16.dtype == jnp.bfloat16
    assert relative_error(y16.astype(np.float32), y32) < 2e-2


def test_modulated_fused_equals_unfused():
    x, w, s = _random_images((3, 8, 8, 4)), _random_images((2, 4, 3, 3), 1), _random_images((3, 4), 2)
    f = ops.setup_filter([1, 3, 3, 1])
    a = ops.modulated_conv2d(x, w, s, down=2, padding=1, resample_filter=f, fused_modconv=True)
    b = ops.modulated_conv2d(x, w, s, down=2, padding=1, resample_filter=f, fused_modconv=False)
    assert relative_error(a, b) < 1e-5


def test_vmap_over_batch_matches_batched_call():
    x = _random_images((4, 8, 8, 3))
    f = ops.setup_filter([1, 3, 3, 1])
    batched = ops.downsample2d(x, f)
    mapped = jax.vmap(lambda xi: ops.downsample2d(xi[None], f)[0])(x)
    np.testing.assert_allclose(mapped, batched, rtol=1e-6, atol=1e-6)


# ---- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda: ops.upfirdn2d(np.zeros((8, 8, 3)), None), "rank 4"),
    (lambda: ops.upfirdn2d(np.zeros((1, 8, 8, 3)), np.zeros((2, 2, 2))), "1-D or 2-D"),
    (lambda: ops.upfirdn2d(np.zeros((1, 8, 8, 3)), [1.0, 1.0], up=1.5), "positive integers"),
    (lambda: ops.upfirdn2d(np.zeros((1, 8, 8, 3)), [1.0, 1.0], down=0), "positive integers"),
    (lambda: ops.upfirdn2d(np.zeros((1, 2, 2, 3)), np.ones((5, 5))), "smaller than"),
    (lambda: ops.upfirdn2d(np.zeros((1, 8, 8, 3)), None, padding=[1, 2, 3]), "padding"),
    (lambda: ops.setup_filter(np.zeros((2, 2, 2))), "filter"),
    (lambda: ops.bias_act(np.zeros((2, 3)), act="gelu"), "unknown activation"),
    (lambda: ops.bias_act(np.zeros((2, 3)), np.zeros(4)), "does not match"),
    (lambda: ops.conv2d_resample(np.zeros((1, 8, 8, 3)), np.zeros((4, 2, 3, 3))), "channels"),
    (lambda: ops.conv2d_resample(np.zeros((1, 8, 8, 3)), np.zeros((4, 3, 3, 3)), up=2.0), "up"),
    (lambda: ops.minibatch_std(np.zeros((6, 4, 4, 2)), 4), "divisible"),
])
def test_bad_input_gets_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def _derivatives(fn, inputs, probe, tangents):
    """fn's value, gradients of sum(fn * probe), a second-order gradient (of the squared first input's
    gradient, as R1), a jvp, a jvp of the gradient (forward over reverse) and a vmapped gradient."""
    loss = lambda *a: jnp.sum(fn(*a) * probe)
    argnums = tuple(range(len(inputs)))
    grads = jax.grad(loss, argnums=argnums)(*inputs)
    r1 = jax.grad(lambda *a: jnp.sum(jax.grad(loss)(*a) ** 2), argnums=argnums[1:])(*inputs)
    _, tangent = jax.jvp(fn, inputs, tangents)
    _, hvp = jax.jvp(jax.grad(loss, argnums=argnums), inputs, tangents)
    mapped = jax.vmap(lambda x: jax.grad(lambda x: jnp.sum(fn(x[None], *inputs[1:]) ** 2))(x))(inputs[0])
    return fn(*inputs), *grads, *r1, tangent, *hvp, mapped


def _assert_cpu_forms_equal_xla(fn, inputs, seed):
    """The CPU rewrites against XLA's plain forms, in float64: every derivative of _derivatives."""
    rng = np.random.default_rng(seed)
    with conv2d_module.conv_path("generic"):
        probe = rng.standard_normal(jax.eval_shape(fn, *inputs).shape)
        tangents = tuple(rng.standard_normal(np.shape(a)) for a in inputs)
        theirs = jax.jit(_derivatives, static_argnums=0)(fn, inputs, probe, tangents)
    with conv2d_module.conv_path("cpu"):
        ours = jax.jit(_derivatives, static_argnums=0)(fn, inputs, probe, tangents)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        assert float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b))) < 1e-12


@pytest.mark.parametrize("stacked", [False, True])
@pytest.mark.parametrize("stride", [2, 3])
def test_cpu_transposed_conv_equals_xla(stride, stacked, monkeypatch):
    """Both polyphase forms of the transposed conv (phases separate, or stacked into one conv's
    channels, which the CPU takes for few channels and groups=1) against XLA's input-dilated conv."""
    monkeypatch.setattr(cpu_conv, "_STACKED_PHASE_CHANNELS", 10 ** 9 if stacked else 0)
    rng = np.random.default_rng(stride)
    with jax.enable_x64(True):
        for kh, kw, ph, pw, groups, flip in [(3, 3, 0, 0, 1, True), (3, 3, 1, 1, 1, False), (4, 1, 2, 0, 2, True),
                                             (1, 3, 0, 2, 2, False), (2, 2, 1, 0, 1, False)]:
            x = rng.standard_normal((2, 5, 4, 4))
            w = rng.standard_normal((6, 4 // groups, kh, kw))
            conv = lambda x, w: conv2d_module.transposed_conv2d(x, w, stride, (ph, pw), groups, flip)
            _assert_cpu_forms_equal_xla(conv, (x, w), kh * 10 + kw)


# (kernel h, w, padding, height, width, in, out channels, groups): 'same', full (StyleGAN3) and
# asymmetric padding, unpadded (a padding column), 1x1 products contracting few or many channels in
# each direction, and a grouped conv.
_CONV_CASES = [(3, 3, ((1, 1), (1, 1)), 7, 6, 3, 4, 1), (3, 3, ((2, 2), (2, 2)), 5, 5, 3, 4, 1),
               (4, 2, ((0, 1), (2, 0)), 9, 8, 3, 4, 1), (1, 1, ((0, 0), (0, 0)), 6, 7, 3, 4, 1),
               (1, 1, ((0, 0), (0, 0)), 5, 6, 10, 9, 1), (1, 1, ((0, 0), (0, 0)), 5, 6, 3, 10, 1),
               (3, 1, ((0, 0), (0, 0)), 8, 5, 3, 4, 1), (3, 3, ((1, 1), (1, 1)), 6, 6, 4, 6, 2)]


@pytest.mark.parametrize("stride, case", [(1, case) for case in _CONV_CASES]
                         + [(2, _CONV_CASES[i]) for i in (0, 2, 7)] + [(3, _CONV_CASES[2])])
def test_cpu_conv_equals_xla(stride, case, monkeypatch):
    """conv2d's CPU rewrites (tap-wise weight gradients, polyphase strides, padding columns, 1x1
    products unrolled or not in each direction) against XLA's convolution; every unstrided shape takes
    the tap-wise form here."""
    monkeypatch.setattr(cpu_conv, "_LARGE_TAP_MACS", 0)
    kh, kw, padding, height, width, cin, cout, groups = case
    rng = np.random.default_rng(stride)
    with jax.enable_x64(True):
        x = rng.standard_normal((2, height, width, cin))
        w = rng.standard_normal((cout, cin // groups, kh, kw))
        conv = lambda x, w: conv2d_module.conv2d(x, w, stride, padding, groups)
        _assert_cpu_forms_equal_xla(conv, (x, w), kh * 10 + kw)


def test_conv_path_is_part_of_the_jit_cache_key():
    """A function jitted once is traced again on the other path (the 1x1 conv: a matrix product or XLA's conv)."""
    x, w = _random_images((1, 4, 4, 16)), _random_images((16, 16, 1, 1), 1)
    conv = jax.jit(lambda x, w: conv2d_module.conv2d(x, w))
    expected = np.einsum("nhwi,oi->nhwo", x, w[:, :, 0, 0])
    for path, op in (("cpu", "stablehlo.dot_general"), ("generic", "stablehlo.convolution")):
        with conv2d_module.conv_path(path):
            assert op in conv.lower(x, w).as_text()
            np.testing.assert_allclose(conv(x, w), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="conv path"):
        with conv2d_module.conv_path("gpu"):
            pass
