"""Equivariance operators, masks, bandlimit filter and PSNR vs metrics.npz; the EQ drivers on a toy generator."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_golden, relative_error

from stylegan_jax.eval import equivariance
from stylegan_jax.eval.equivariance import equivariance_psnr, masked_psnr


@pytest.fixture(scope="module")
def golden():
    return load_golden("metrics.npz")


def _nhwc(x):
    return jnp.asarray(np.asarray(x).transpose(0, 2, 3, 1))


def _nchw(x):
    return np.asarray(x).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("name, op, max_error", [
    ("int_translation", equivariance.integer_translation, 0.0),
    ("frac_translation", equivariance.fractional_translation, 1e-6),
])
def test_translations_and_masks_match_golden(golden, name, op, max_error):
    t = golden[f"eq/{name}_t"]
    out, mask = op(_nhwc(golden["eq/img"]), t[0], t[1])
    assert relative_error(_nchw(out), golden[f"eq/{name}_out"]) <= max_error
    np.testing.assert_array_equal(_nchw(mask), golden[f"eq/{name}_mask"])


def test_rotation_matrix_and_bandlimit_filter_match_golden(golden):
    angle = golden["eq/angle"]
    assert relative_error(equivariance.rotation_matrix(-angle), golden["eq/rotation_matrix_neg_angle"]) < 1e-6
    f = equivariance.affine_bandlimit_filter(equivariance.rotation_matrix(angle), a=3, amax=6, up=4)
    assert relative_error(f, golden["eq/bandlimit_filter_rot"]) < 1e-5


@pytest.mark.parametrize("name, op", [
    ("frac_rotation", equivariance.fractional_rotation),
    ("pseudo_rotation", equivariance.fractional_pseudo_rotation),
])
def test_rotations_and_masks_match_golden(golden, name, op):
    out, mask = op(_nhwc(golden["eq/img"]), golden["eq/angle"])
    assert relative_error(_nchw(out), golden[f"eq/{name}_out"]) < 2e-5
    np.testing.assert_array_equal(_nchw(mask), golden[f"eq/{name}_mask"])


def test_masked_psnr_matches_golden(golden):
    mask = golden["eq/frac_rotation_mask"] * golden["eq/pseudo_rotation_mask"]
    psnr = masked_psnr(golden["eq/frac_rotation_out"], golden["eq/pseudo_rotation_out"], mask)
    assert abs(psnr - golden["eq/psnr_rot_vs_pseudo"]) < 1e-9


def test_operators_work_under_jit_with_traced_parameters(golden):
    x = _nhwc(golden["eq/img"])
    t = golden["eq/frac_translation_t"]
    jitted = jax.jit(equivariance.fractional_translation)(x, t[0], t[1])
    eager = equivariance.fractional_translation(x, float(t[0]), float(t[1]))
    np.testing.assert_allclose(jitted[0], eager[0], atol=1e-6)


RES = 32


def _field(z, coords):
    # A smooth (bandlimited) pattern with z-dependent phases, evaluated at coords [H, W, 2] in image units.
    freqs = jnp.array([[1.0, 0.0], [0.0, 2.0], [1.5, 1.0], [-1.0, 2.5]]) * 2 * np.pi
    arg = jnp.einsum("hwk,fk->hwf", coords, freqs)[None] + z[:, None, None, :4]
    weights = jnp.array([[0.3, 0.2, 0.1, 0.25], [0.1, 0.3, 0.2, 0.2], [0.2, 0.1, 0.3, 0.15]])
    return jnp.einsum("nhwf,cf->nhwc", jnp.cos(arg), weights)


def _equivariant_render(z, c, transform):
    # Samples the pattern at transform @ (x, y, 1): how StyleGAN3 applies its input transform.
    p = (jnp.arange(RES) + 0.5) / RES - 0.5
    y, x = jnp.meshgrid(p, p, indexing="ij")
    coords = jnp.stack([x, y, jnp.ones_like(x)], axis=-1) @ transform.T
    return _field(z, coords[..., :2])


def _invariant_render(z, c, transform):
    return _equivariant_render(z, c, jnp.eye(3))


@pytest.mark.parametrize("kind", ["int", "frac", "rot"])
def test_eq_driver_rewards_an_equivariant_generator(kind):
    key = jax.random.key(0)
    equivariant = equivariance_psnr(_equivariant_render, 8, 0, kind, num_samples=8, key=key)
    invariant = equivariance_psnr(_invariant_render, 8, 0, kind, num_samples=8, key=key)
    assert equivariant > 60
    assert invariant < 25
