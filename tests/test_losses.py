"""Loss functions of training against hand-computed values and finite differences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax.ops.upfirdn2d import filter2d
from stylegan_jax.training import losses
from stylegan_jax.training.adam import Adam, lazy_adam
from stylegan_jax.training.connectivity import value_grad_and_reached
from stylegan_jax.training.trainer import ema_beta


def _softplus(x):
    return np.log1p(np.exp(x))


def test_logistic_losses_match_hand_values():
    real, fake = np.array([[1.5], [-0.5]]), np.array([[0.25], [-2.0]])
    assert np.isclose(losses.generator_loss(fake), np.mean(_softplus(-fake)), rtol=1e-6)
    expected = np.mean(_softplus(fake)) + np.mean(_softplus(-real))
    assert np.isclose(losses.discriminator_loss(real, fake), expected, rtol=1e-6)
    assert np.isclose(losses.generator_loss(np.zeros((3, 1))), np.log(2.0), rtol=1e-6)


def _central_difference(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[idx] = eps
        grad[idx] = (f(x + d) - f(x - d)) / (2 * eps)
    return grad


def test_r1_penalty_matches_finite_differences():
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        w = rng.standard_normal((2, 3, 3, 2))
        x = rng.standard_normal((2, 3, 3, 2))
        discriminate = lambda img: jnp.sum(jnp.tanh(img * w[None, 0]) * w[None, 1], axis=(1, 2, 3))[:, None]
        penalty = losses.r1_penalty(discriminate, jnp.asarray(x))
        numeric = _central_difference(lambda v: float(jnp.sum(discriminate(jnp.asarray(v)))), x)
        np.testing.assert_allclose(penalty, np.sum(numeric ** 2, axis=(1, 2, 3)), rtol=1e-6)


def test_path_lengths_match_finite_differences():
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        a = rng.standard_normal((3, 4, 4, 2))  # [num_ws, H, W, C] mixing matrix per w component
        ws = rng.standard_normal((2, 3, 3))
        synthesize = lambda w: jnp.tanh(jnp.einsum("nkd,khwc->nhwc", w, a))
        noise = rng.standard_normal((2, 4, 4, 2))
        lengths = losses.path_lengths(synthesize, jnp.asarray(ws), jnp.asarray(noise))
        noise = noise / np.sqrt(16)
        for n in range(2):
            g = _central_difference(lambda w: float(jnp.sum(synthesize(jnp.asarray(w)[None])[0] * noise[n])), ws[n])
            assert np.isclose(lengths[n], np.sqrt(np.mean(np.sum(g ** 2, axis=1))), rtol=1e-6)


def test_path_length_penalty_uses_the_running_mean():
    lengths = jnp.array([1.0, 3.0])
    penalty, mean = losses.path_length_penalty(lengths, jnp.float32(0.5), 0.01)
    assert np.isclose(mean, 0.5 + (2.0 - 0.5) * 0.01)
    np.testing.assert_allclose(penalty, (np.array([1.0, 3.0]) - 0.515) ** 2, rtol=1e-6)


def test_path_length_penalty_differentiates_through_the_updated_mean():
    # d/dl_i sum_j (l_j - m(l))^2 with m = m0 + decay * (mean(l) - m0): as the official loss.
    lengths, decay = np.array([1.0, 3.0]), 0.01
    grad = jax.grad(lambda l: jnp.sum(losses.path_length_penalty(l, jnp.float32(0.5), decay)[0]))(jnp.asarray(lengths))
    residual = lengths - (0.5 + decay * (lengths.mean() - 0.5))
    expected = 2 * residual - 2 * residual.sum() * decay / len(lengths)
    np.testing.assert_allclose(grad, expected, rtol=1e-5)
    assert not np.allclose(grad, 2 * residual, rtol=1e-4)  # a detached mean gives this instead


def test_style_mixing_takes_a_suffix_of_layers_when_the_draw_is_below_the_probability():
    ws, other = jnp.zeros((2, 10, 4)), jnp.ones((2, 10, 4))
    for cutoff in range(1, 10):
        mixed = np.asarray(losses.mix_styles(ws, other, jnp.int32(cutoff), jnp.float32(0.3), 0.9))
        assert np.all(mixed[:, cutoff:] == 1) and np.all(mixed[:, :cutoff] == 0)
    assert np.array_equal(losses.mix_styles(ws, other, jnp.int32(3), jnp.float32(0.9), 0.9), ws)  # u >= prob


def test_lerp_uses_torchs_two_forms():
    start, end = np.float32(1e8), np.float32(1.0)
    # weight < 0.5: start + w * (end - start); otherwise end - (end - start) * (1 - w).
    assert losses.lerp(start, end, 0.25) == np.float32(start + np.float32(0.25) * (end - start))
    assert losses.lerp(start, end, 1.0) == end
    assert float(losses.lerp(jnp.float32(start), jnp.float32(end), jnp.float32(1.0))) == end


@pytest.mark.parametrize("sigma", [0.0, 0.2, 1.0, 2.7])
def test_blur_matches_the_official_filter(sigma):
    x = np.random.default_rng(2).standard_normal((1, 12, 12, 2)).astype(np.float32)
    out = losses.blur_images(x, jnp.float32(sigma), max_sigma=3.0)
    radius = int(np.floor(sigma * 3))
    if radius == 0:
        np.testing.assert_allclose(out, x, rtol=1e-6, atol=1e-6)
        return
    taps = np.exp2(-np.square(np.arange(-radius, radius + 1) / sigma))
    np.testing.assert_allclose(out, filter2d(x, taps / taps.sum()), rtol=1e-5, atol=1e-6)


def test_blur_sigma_fades_out_linearly():
    assert losses.blur_sigma(0, 10.0, 200.0) == 10.0
    assert np.isclose(losses.blur_sigma(100_000, 10.0, 200.0), 5.0)
    assert losses.blur_sigma(300_000, 10.0, 200.0) == 0.0
    assert losses.blur_sigma(0, 10.0, 0.0) == 0.0


def test_ema_beta_and_lazy_adam_follow_the_official_formulas():
    assert np.isclose(ema_beta(32, 10**7, 10.0, 0.05), 0.5 ** (32 / 10_000))
    assert np.isclose(ema_beta(32, 1000, 10.0, 0.05), 0.5 ** (32 / 50))
    assert np.isclose(ema_beta(32, 1000, 10.0, None), 0.5 ** (32 / 10_000))
    params = {"w": jnp.ones(3)}
    tx = lazy_adam(0.002, 0.0, 0.99, 1e-8, 16)
    new, _ = tx.update(params, {"w": jnp.full(3, 0.5)}, tx.init(params))
    # First Adam step moves each weight by -lr (bias-corrected), with lr scaled by 16/17.
    np.testing.assert_allclose(new["w"] - 1, -0.002 * 16 / 17, rtol=1e-4)
    assert lazy_adam(0.0025, 0.0, 0.99, 1e-8, 0) == Adam(0.0025, 0.0, 0.99, 1e-8)  # no lazy regularisation


def _torch_adam(theta, grads, lr, b1, b2, eps):
    """torch.optim.Adam's update rule in float64 numpy, one gradient per step."""
    m = v = np.zeros_like(theta)
    for t, g in enumerate(grads, 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        theta = theta - lr / (1 - b1 ** t) * m / (np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps)
    return theta, m, v


def test_value_grad_and_reached_tells_unreached_parameters_from_zero_gradients():
    def loss(params, x):
        # 'unreached' only enters through stop_gradient (torch: .grad None); 'zero' meets x = 0 (a zero .grad).
        y = params["reached"] * x[0] + params["zero"] * x[1] + jax.lax.stop_gradient(params["unreached"])
        return jnp.sum(y ** 2), {"y": y}

    params = {"reached": jnp.float32(2.0), "zero": jnp.float32(3.0), "unreached": jnp.float32(4.0)}
    x = jnp.array([1.5, 0.0])
    traced = jax.jit(lambda p, x: value_grad_and_reached(loss, p, x)[:2])  # inside a trace, as in a phase
    (value, aux), grads = traced(params, x)
    reached = value_grad_and_reached(loss, params, x)[2]
    (expected_value, expected_aux), expected_grads = jax.value_and_grad(loss, has_aux=True)(params, x)
    np.testing.assert_allclose(value, expected_value)
    np.testing.assert_allclose(aux["y"], expected_aux["y"])
    for name in params:
        np.testing.assert_allclose(grads[name], expected_grads[name])
    assert float(grads["reached"]) != 0 and float(grads["zero"]) == 0 and float(grads["unreached"]) == 0
    assert reached == {"reached": True, "zero": True, "unreached": False}


def test_adam_matches_torchs_rule_and_skips_unreached_and_frozen_parameters():
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(4).astype(np.float32) for _ in range(3)]
    tx = Adam(0.01, 0.5, 0.9, 1e-8, trainable=lambda path: path != ("frozen",))
    params = {"a": jnp.ones(4), "b": jnp.ones(4), "frozen": jnp.ones(4)}
    state = tx.init(params)
    assert set(state.step) == {"a", "b"}  # frozen parameters have no optimiser state
    for i, g in enumerate(grads):
        reached = {"a": True, "b": i != 1, "frozen": True}  # 'b' gets no gradient in step 1
        params, state = tx.update(params, {"a": g, "b": g, "frozen": g}, state, reached)
    expected, m, v = _torch_adam(np.ones(4), grads, 0.01, 0.5, 0.9, 1e-8)
    np.testing.assert_allclose(params["a"], expected, rtol=1e-6)
    np.testing.assert_allclose(state.exp_avg["a"], m, rtol=1e-5)
    np.testing.assert_allclose(state.exp_avg_sq["a"], v, rtol=1e-5)
    np.testing.assert_allclose(params["b"], _torch_adam(np.ones(4), grads[::2], 0.01, 0.5, 0.9, 1e-8)[0], rtol=1e-6)
    assert int(state.step["a"]) == 3 and int(state.step["b"]) == 2
    np.testing.assert_array_equal(params["frozen"], np.ones(4))
