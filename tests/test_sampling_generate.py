"""Generating images: agreement with the network, truncation, labels, determinism over devices, SG3 transforms."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax.sampling import compute_ws, generate_images, input_transform, iter_images, seeds_to_z
from test_sampling_nets import reference, sg2, sg2_conditional, sg3

SEEDS = [0, 1, 2, 3, 4, 5, 6, 77]


def _uint8(images):
    """The official conversion: (x * 127.5 + 128) clipped to [0, 255] and truncated."""
    return np.clip(np.asarray(images) * 127.5 + 128, 0, 255).astype(np.uint8)


def _assert_close_uint8(actual, expected):
    diff = np.abs(actual.astype(int) - expected.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.01, (diff.max(), diff.mean())


@pytest.fixture(scope="module")
def sg2_images():
    G, variables = sg2()
    return generate_images(G, variables, SEEDS, truncation_psi=0.7)


def test_seeds_render_like_the_network_called_directly(sg2_images):
    G, variables = sg2()
    z = np.concatenate([np.random.RandomState(s).randn(1, G.z_dim) for s in SEEDS]).astype(np.float32)
    expected = reference(G, variables, z, truncation_psi=0.7, noise_mode="const")
    assert sg2_images.shape == (len(SEEDS), 16, 16, 3) and sg2_images.dtype == np.uint8
    _assert_close_uint8(sg2_images, _uint8(expected))


def test_seeds_z_and_ws_inputs_agree(sg2_images):
    G, variables = sg2()
    from_z = generate_images(G, variables, z=seeds_to_z(SEEDS, G.z_dim), truncation_psi=0.7)
    ws = compute_ws(G, variables, SEEDS, truncation_psi=0.7)
    np.testing.assert_array_equal(from_z, sg2_images)
    np.testing.assert_array_equal(generate_images(G, variables, ws=ws), sg2_images)
    with pytest.raises(ValueError, match="exactly one"):
        generate_images(G, variables, SEEDS, ws=ws)


def test_reproducible_across_runs_batch_sizes_and_device_counts(sg2_images):
    G, variables = sg2()
    assert jax.device_count() == 8
    one_device = generate_images(G, variables, SEEDS, truncation_psi=0.7, batch_size=4, devices=jax.devices()[:1])
    _assert_close_uint8(one_device, sg2_images)
    np.testing.assert_array_equal(generate_images(G, variables, SEEDS, truncation_psi=0.7), sg2_images)
    single = generate_images(G, variables, [SEEDS[5]], truncation_psi=0.7)
    _assert_close_uint8(single[0], sg2_images[5])


def test_psi_zero_gives_the_average_image_for_every_seed():
    G, variables = sg2()
    images = generate_images(G, variables, [0, 5, 99], truncation_psi=0)
    w_avg = np.broadcast_to(np.asarray(variables["buffers"]["mapping"]["w_avg"]), (1, G.num_ws, G.w_dim))
    average = generate_images(G, variables, ws=w_avg)[0]
    for image in images:
        np.testing.assert_array_equal(image, average)
    assert images.std() > 1  # not a blank image


def test_truncation_cutoff_leaves_later_ws_alone():
    G, variables = sg2()
    full = compute_ws(G, variables, [3])
    cut = compute_ws(G, variables, [3], truncation_psi=0.5, truncation_cutoff=2)
    w_avg = np.asarray(variables["buffers"]["mapping"]["w_avg"])
    np.testing.assert_allclose(cut[0, :2], w_avg + (full[0, :2] - w_avg) * 0.5, atol=1e-6)
    np.testing.assert_array_equal(cut[0, 2:], full[0, 2:])


def test_random_noise_depends_on_the_noise_seed():
    G, variables = sg2()
    ws = compute_ws(G, variables, [1, 2])
    const = generate_images(G, variables, ws=ws)
    first = generate_images(G, variables, ws=ws, noise_mode="random", noise_seed=1)
    assert not np.array_equal(first, const)
    assert not np.array_equal(first[0], first[1])
    np.testing.assert_array_equal(first, generate_images(G, variables, ws=ws, noise_mode="random", noise_seed=1))
    assert not np.array_equal(first, generate_images(G, variables, ws=ws, noise_mode="random", noise_seed=2))
    with pytest.raises(ValueError, match="noise_mode"):
        generate_images(G, variables, ws=ws, noise_mode="loud")


def test_conditional_generation_uses_a_one_hot_label():
    G, variables = sg2_conditional()
    images = generate_images(G, variables, [4, 5], class_idx=2)
    z = seeds_to_z([4, 5], G.z_dim)
    c = np.zeros((2, 3), np.float32)
    c[:, 2] = 1
    _assert_close_uint8(images, _uint8(reference(G, variables, z, jnp.asarray(c))))
    assert not np.array_equal(images, generate_images(G, variables, [4, 5], class_idx=0))
    for class_idx, message in [(None, "conditional"), (3, "out of range"), (-1, "out of range")]:
        with pytest.raises(ValueError, match=message):
            generate_images(G, variables, [4], class_idx=class_idx)
    with pytest.raises(ValueError, match="unconditional"):
        generate_images(*sg2(), [4], class_idx=0)


def test_stylegan3_translate_and_rotate_use_the_inverse_transform():
    G, variables = sg3()
    images = generate_images(G, variables, [1, 2], translate=(0.2, -0.1), rotate=20)
    z = jnp.asarray(seeds_to_z([1, 2], G.z_dim))
    render = jax.jit(lambda variables, z, transform: G.apply(variables, z, None, transform=transform))
    _assert_close_uint8(images, _uint8(render(variables, z, input_transform((0.2, -0.1), 20))))
    plain = generate_images(G, variables, [1, 2])
    _assert_close_uint8(plain, _uint8(render(variables, z, np.eye(3, dtype=np.float32))))
    assert np.abs(plain.astype(int) - images).mean() > 1


def test_translate_needs_stylegan3():
    G, variables = sg2()
    with pytest.raises(ValueError, match="StyleGAN3"):
        generate_images(G, variables, [0], rotate=10)


def test_iter_images_checks_arguments_before_rendering():
    G, variables = sg2()
    with pytest.raises(ValueError, match="ws must have shape"):
        iter_images(G, variables, np.zeros((2, G.num_ws + 1, G.w_dim)))
