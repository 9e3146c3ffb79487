"""Projection into W: recovering a target that the same tiny generator made, on StyleGAN2 and StyleGAN3."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax.perceptual.lpips import lpips_distance
from stylegan_jax.sampling import compute_ws, generate_images, project
from stylegan_jax.sampling.projection import noise_regularization, w_statistics
from test_sampling_nets import sg2, sg3

TARGET_SEED, OTHER_SEED = 5, 6
NUM_STEPS = 80


def _lpips(a, b):
    as_float = lambda x: jnp.asarray(x, jnp.float32)[None] / 127.5 - 1
    return float(lpips_distance(as_float(a), as_float(b))[0])


def _mse(img0, img1):
    return jnp.mean(jnp.square(img0 - img1), axis=(1, 2, 3))


@pytest.fixture(scope="module")
def sg2_projection():
    G, variables = sg2()
    w_true = compute_ws(G, variables, [TARGET_SEED])[0]
    target = generate_images(G, variables, ws=w_true[None])[0]
    result = project(G, variables, target, num_steps=NUM_STEPS, w_avg_samples=2000)
    return G, variables, w_true, target, result


def test_projection_recovers_a_generated_target(sg2_projection):
    G, variables, w_true, target, result = sg2_projection
    other = generate_images(G, variables, [OTHER_SEED])[0]
    w_avg, _ = w_statistics(G, variables, 2000)
    numbers = dict(lpips_projection=_lpips(result.image, target), lpips_other_seed=_lpips(other, target),
                   w_error=float(np.linalg.norm(result.ws[0] - w_true[0])),
                   w_error_of_start=float(np.linalg.norm(w_avg - w_true[0])),
                   w_error_of_other_seed=float(np.linalg.norm(compute_ws(G, variables, [OTHER_SEED])[0, 0]
                                                              - w_true[0])))
    print("projection:", {k: round(v, 4) for k, v in numbers.items()})
    assert numbers["lpips_projection"] < 0.2 * numbers["lpips_other_seed"]
    assert numbers["w_error"] < 0.4 * numbers["w_error_of_start"]
    assert numbers["w_error"] < 0.2 * numbers["w_error_of_other_seed"]


def test_projection_result_and_trace(sg2_projection):
    G, _, _, target, result = sg2_projection
    assert result.ws.shape == (G.num_ws, G.w_dim)
    assert result.ws_steps.shape == (NUM_STEPS, G.num_ws, G.w_dim)
    np.testing.assert_array_equal(result.ws_steps[-1], result.ws)
    assert np.all(result.ws == result.ws[:1])  # W, not W+: one w for every layer
    assert result.image.shape == target.shape and result.image.dtype == np.uint8
    assert result.losses.shape == result.distances.shape == (NUM_STEPS,)
    assert result.distances[-1] < 0.1 * result.distances[0]
    assert result.losses[-1] < result.losses[0]
    assert len(result.noise) == 5  # conv1 of b4, conv0 and conv1 of b8 and b16
    for noise in result.noise.values():
        assert abs(noise.mean()) < 1e-5 and abs(np.mean(noise ** 2) - 1) < 1e-4
    rendered = generate_images(G, result.variables, ws=result.ws[None])[0]
    np.testing.assert_array_equal(rendered, result.image)


def test_w_plus_projection_on_stylegan3_without_noise_maps():
    G, variables = sg3()
    target = generate_images(G, variables, [TARGET_SEED])[0]
    result = project(G, variables, target, num_steps=20, w_plus=True, w_avg_samples=500, distance_fn=_mse)
    assert result.noise == {}
    assert not np.all(result.ws == result.ws[:1])  # one w per layer
    assert result.distances[-1] < 0.2 * result.distances[0]


def test_projection_target_must_match_the_generator():
    G, variables = sg2()
    with pytest.raises(ValueError, match="target must be uint8 of shape"):
        project(G, variables, np.zeros((8, 8, 3), np.uint8), num_steps=1)


def test_noise_regularization_penalises_correlated_noise():
    white = jax.random.normal(jax.random.key(0), (32, 32))
    smooth = jnp.repeat(jnp.repeat(jax.random.normal(jax.random.key(1), (8, 8)), 4, 0), 4, 1)
    assert float(noise_regularization([white])) < 0.01 * float(noise_regularization([smooth]))
