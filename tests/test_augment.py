"""ADA augmentation: parity with the official AugmentPipe (golden augment.npz) and unit properties."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import GOLDEN, load_golden, relative_error
from official_replay import replay_augment

from stylegan_jax.augment import (HZ_FBANK, HZ_GEOM, PRESETS, AugmentSpec, augment, augment_from_draws,
                                  augment_spec, draw_layout, draw_random, geometric, params_from_draws)
from stylegan_jax.augment.tiers import pad_tiers

PATH = str(GOLDEN / "augment.npz")
CASES = (json.loads(str(np.load(PATH)["meta/cases"])) if (GOLDEN / "augment.npz").exists()
         else ["golden file absent"])


@pytest.fixture(scope="module")
def golden():
    return load_golden("augment.npz")


def _case(golden, case):
    meta = json.loads(str(golden[f"{case}/meta"]))
    draws = [golden[d["key"]] for d in meta["draws"]]
    return meta, draws, AugmentSpec(**meta["kwargs"])


@pytest.mark.parametrize("case", CASES)
def test_replay_matches_official(golden, case):
    out, grad = replay_augment(PATH, case)
    ref_out, ref_grad = golden[f"{case}/out"], golden[f"{case}/grad"]
    assert relative_error(out, ref_out) < 1e-5 and np.abs(out - ref_out).max() < 5e-5
    assert relative_error(grad, ref_grad) < 3e-5 and np.abs(grad - ref_grad).max() < 5e-4


@pytest.mark.parametrize("case", CASES)
def test_params_and_layout_match_official(golden, case):
    meta, draws, spec = _case(golden, case)
    b, c, h, w = meta["shape"]
    layout = draw_layout(spec, b, c, h, w)
    assert [(fn, list(shape)) for fn, shape, _ in layout] == [(d["fn"], d["shape"]) for d in meta["draws"]]
    assert [role for _, _, role in layout] == [f"{d['transform']}/{d['role']}" for d in meta["draws"]]
    params = params_from_draws(draws, golden[f"{case}/p"], spec, (b, h, w, c))
    prefix = f"{case}/params/"
    for key in (k for k in golden.files if k.startswith(prefix)):
        name, ref = key[len(prefix):], golden[key]
        mine = np.asarray(params[name]).reshape(ref.shape)
        if ref.dtype == np.int32:
            np.testing.assert_array_equal(mine, ref, err_msg=name)
        else:
            np.testing.assert_allclose(mine, ref, rtol=1e-5, atol=1e-6, err_msg=name)


def test_filter_buffers_match_official(golden):
    np.testing.assert_allclose(HZ_GEOM, golden["buffers/Hz_geom"], rtol=0, atol=1e-7)
    np.testing.assert_allclose(HZ_FBANK, golden["buffers/Hz_fbank"], rtol=0, atol=1e-7)


BGCFNC_JIT = jax.jit(augment, static_argnums=3)
FROM_DRAWS_JIT = jax.jit(augment_from_draws, static_argnums=3)


def _images(shape, seed=0):
    return jax.random.uniform(jax.random.key(seed), shape, jnp.float32, -1, 1)


def test_grayscale_runs_and_skips_hue_saturation():
    spec = PRESETS["bgcfnc"]
    layout = draw_layout(spec, 2, 1, 32, 32)
    assert len(layout) == 35 and not any(r.startswith(("hue", "saturation")) for _, _, r in layout)
    x = _images((2, 32, 32, 1))
    draws = draw_random(jax.random.key(1), spec, 2, 1, 32, 32)
    without = augment_spec("bgcfnc", hue=0, saturation=0)
    out = FROM_DRAWS_JIT(x, draws, 1.0, spec)
    assert out.shape == x.shape and bool(jnp.all(jnp.isfinite(out)))
    np.testing.assert_array_equal(out, FROM_DRAWS_JIT(x, draws, 1.0, without))


def test_jit_vmap_and_gradient():
    x = _images((3, 2, 32, 32, 3))
    keys = jax.random.split(jax.random.key(2), 3)
    p = jnp.float32(0.7)
    batched = jax.jit(jax.vmap(augment, in_axes=(0, 0, None, None)), static_argnums=3)(x, keys, p, PRESETS["bgcfnc"])
    for i in range(3):
        np.testing.assert_allclose(batched[i], BGCFNC_JIT(x[i], keys[i], p, PRESETS["bgcfnc"]), atol=1e-5)
    grad = jax.grad(lambda im: jnp.sum(BGCFNC_JIT(im, keys[0], p, PRESETS["bgcfnc"]) ** 2))(x[0])
    assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad).max()) > 0


def test_p0_is_near_identity():
    x = _images((2, 32, 32, 3))
    out = BGCFNC_JIT(x, jax.random.key(3), jnp.float32(0), PRESETS["bgcfnc"])
    assert float(jnp.abs(out - x).max()) < 1e-5


def test_presets_and_errors():
    assert set(PRESETS) == {"blit", "geom", "color", "filter", "noise", "cutout", "bg", "bgc", "bgcf", "bgcfn",
                            "bgcfnc"}
    assert PRESETS["bgc"].enabled(3) == ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac",
                                         "brightness", "contrast", "lumaflip", "hue", "saturation")
    assert len(draw_layout(PRESETS["bgc"], 4, 3, 32, 32)) == 26
    assert len(draw_layout(PRESETS["bgcfnc"], 4, 3, 32, 32)) == 39
    spec = augment_spec("bgc", xflip=0.5, imgfilter_bands=[0, 1, 1, 1])
    assert spec.xflip == 0.5 and spec.imgfilter_bands == (0.0, 1.0, 1.0, 1.0) and hash(spec) == hash(spec)
    with pytest.raises(ValueError, match="unknown augmentation pipe 'bgx'.*bgcfnc"):
        augment_spec("bgx")
    with pytest.raises(ValueError, match="unknown augmentation option.*xflipp"):
        augment_spec("bgc", xflipp=1)


def test_pad_tiers():
    assert pad_tiers(256, 256) == ((8, 8), (64, 64), (128, 128), (192, 192), (255, 255))
    assert pad_tiers(32, 64) == ((8, 8), (8, 16), (16, 32), (24, 48), (31, 63))
    assert pad_tiers(8, 8) == ((7, 7),)


def _geometric_vjp(x, cotangent, theta, pads):
    out, vjp = jax.vjp(lambda im: geometric.apply_geometric(im, theta, pads), x)
    return out, vjp(cotangent)[0]


@pytest.mark.parametrize("p", [0.0, 0.6])
def test_every_covering_pad_tier_gives_the_largest_tiers_result(monkeypatch, p):
    x, cotangent = _images((4, 32, 32, 3)), _images((4, 32, 32, 3), seed=1)
    spec = augment_spec("bgc", xint_max=0.25, scale_std=0.4)
    params = params_from_draws(draw_random(jax.random.key(5), spec, 4, 3, 32, 32), jnp.float32(p), spec, x.shape)
    theta, pads = params["geom_theta"], params["geom_pad_lrtb"]
    covering = [t for t in pad_tiers(32, 32) if min(t) >= int(jnp.max(pads))]
    assert len(covering) >= 2
    results = []
    for tier in covering:
        monkeypatch.setattr(geometric, "pad_tiers", lambda height, width, tier=tier: (tier,))
        results.append(jax.jit(_geometric_vjp)(x, cotangent, theta, pads))
    for out, grad in results[:-1]:
        np.testing.assert_allclose(out, results[-1][0], rtol=0, atol=1e-6)
        np.testing.assert_allclose(grad, results[-1][1], rtol=0, atol=1e-6)


def test_integer_aligned_transforms_compile_consistently():
    # Flips, quarter turns and integer shifts put sampling positions on integers; the corner and the
    # weights of each tap must come from the same float (XLA may otherwise round them differently).
    x = _images((8, 32, 32, 3))
    draws = draw_random(jax.random.key(4), PRESETS["blit"], 8, 3, 32, 32)
    eager = augment_from_draws(x, draws, 1.0, PRESETS["blit"])
    np.testing.assert_allclose(FROM_DRAWS_JIT(x, draws, 1.0, PRESETS["blit"]), eager, rtol=0, atol=1e-5)


def test_vmap_runs_one_pad_tier():
    x = _images((3, 2, 32, 32, 3))
    keys = jax.random.split(jax.random.key(2), 3)
    jaxpr = jax.make_jaxpr(jax.vmap(augment, in_axes=(0, 0, None, None)), static_argnums=3)(
        x, keys, jnp.float32(0.7), PRESETS["bgc"])
    assert "cond[" in str(jaxpr)
