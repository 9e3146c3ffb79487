"""Loss functions of training against hand-computed values and finite differences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax.ops.upfirdn2d import filter2d
from stylegan_jax.training import losses
from stylegan_jax.training.trainer import ema_beta, lazy_adam


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
        key = jax.random.key(0)
        lengths = losses.path_lengths(synthesize, jnp.asarray(ws), key)
        noise = np.asarray(jax.random.normal(key, (2, 4, 4, 2))) / np.sqrt(16)
        for n in range(2):
            g = _central_difference(lambda w: float(jnp.sum(synthesize(jnp.asarray(w)[None])[0] * noise[n])), ws[n])
            assert np.isclose(lengths[n], np.sqrt(np.mean(np.sum(g ** 2, axis=1))), rtol=1e-6)


def test_path_length_penalty_uses_the_running_mean():
    lengths = jnp.array([1.0, 3.0])
    penalty, mean = losses.path_length_penalty(lengths, jnp.float32(0.5), 0.01)
    assert np.isclose(mean, 0.5 + (2.0 - 0.5) * 0.01)
    np.testing.assert_allclose(penalty, (np.array([1.0, 3.0]) - 0.515) ** 2, rtol=1e-6)


def test_style_mixing_takes_a_suffix_of_layers():
    ws, other = jnp.zeros((2, 10, 4)), jnp.ones((2, 10, 4))
    assert np.array_equal(losses.mix_styles(ws, other, jax.random.key(0), 0.0), ws)
    for seed in range(20):
        mixed = np.asarray(losses.mix_styles(ws, other, jax.random.key(seed), 1.0))
        taken = mixed[0, :, 0]
        cutoff = int(np.argmax(taken))
        assert 1 <= cutoff < 10 and np.all(taken[cutoff:] == 1) and np.all(taken[:cutoff] == 0)
        assert np.array_equal(mixed[0], mixed[1])


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
    updates, _ = tx.update({"w": jnp.full(3, 0.5)}, tx.init(params), params)
    # First Adam step moves each weight by -lr (bias-corrected), with lr scaled by 16/17.
    np.testing.assert_allclose(updates["w"], -0.002 * 16 / 17, rtol=1e-4)
