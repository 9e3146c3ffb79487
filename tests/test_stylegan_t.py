"""StyleGAN-T generator: parity with the official code (tests/data/sgt_tiny_golden.npz, written by
tests/data/make_sgt_golden.py), shapes, widths, truncation and the x_avg update."""
from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax.convert.state_dict import from_official_state_dict, to_official_state_dict
from stylegan_jax.networks import stylegan_t
from stylegan_jax.networks.stylegan_t import Generator

GOLDEN = Path(__file__).parent / "data" / "sgt_tiny_golden.npz"
CLASS_NAME = "networks.generator.Generator"  # the official class, as its pickles name it
TOL = 1e-5


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


@pytest.fixture(scope="module")
def golden():
    data = np.load(GOLDEN)
    kwargs = json.loads(str(data["meta/init_kwargs"]))
    sd = {k[3:]: data[k] for k in data.files if k.startswith("sd/")}
    G, variables = from_official_state_dict(CLASS_NAME, {**kwargs, "clip_dim": data["c"].shape[1]}, sd)
    assert isinstance(G, Generator)
    return G, variables, data


def test_parity_with_official(golden):
    G, variables, data = golden
    z, c = jnp.asarray(data["z"]), jnp.asarray(data["c"])

    @jax.jit
    def run(variables, z, c, ws_both):
        ws = G.apply(variables, z, c, method="mapping")
        ws_trunc = G.apply(variables, z, c, truncation_psi=0.6, method="mapping")
        img = G.apply(variables, ws_both, noise_mode="const", method="synthesis")  # non-fused modconv
        img_call = G.apply(variables, z, c, truncation_psi=0.6, fused_modconv=True)  # the whole G, fused
        _, updated = G.apply(variables, z, c, update_emas=True, method="mapping", mutable=["buffers"])
        return ws, ws_trunc, img, img_call, updated["buffers"]["mapping"]["x_avg"]

    ws_both = jnp.concatenate([jnp.asarray(data["ws"]), jnp.asarray(data["ws_trunc"])])
    ws, ws_trunc, img, img_call, x_avg = run(variables, z, c, ws_both)
    nchw = lambda x: np.transpose(np.asarray(x), (0, 3, 1, 2))
    errors = {"ws": rel_err(ws, data["ws"]), "ws_trunc": rel_err(ws_trunc, data["ws_trunc"]),
              "x_avg_updated": rel_err(x_avg, data["x_avg_updated"]),
              "img": rel_err(nchw(img)[:len(z)], data["img"]),
              "img_trunc": rel_err(nchw(img)[len(z):], data["img_trunc"]),
              "img_trunc_fused_call": rel_err(nchw(img_call), data["img_trunc"])}
    print("relative errors:", errors)
    assert max(errors.values()) <= TOL, errors


def test_shapes_noise_and_truncation(golden):
    G, variables, _ = golden
    assert (G.z_dim, G.c_dim, G.w_dim, G.num_ws, G.img_resolution, G.img_channels) == (8, 16, 24, 11, 16, 3)
    z, c = G.example_inputs(batch=2)
    assert z.shape == (2, 8) and c.shape == (2, 16)
    z = jax.random.normal(jax.random.key(0), (2, 8))
    ws = G.apply(variables, z, c, truncation_psi=0.0, truncation_cutoff=4, method="mapping")
    x_avg = variables["buffers"]["mapping"]["x_avg"]
    np.testing.assert_allclose(ws[:, :4, :8], np.broadcast_to(x_avg, (2, 4, 8)), rtol=1e-6)
    assert not np.allclose(ws[:, 4:, :8], x_avg)
    np.testing.assert_array_equal(ws[..., 8:], 0)  # the text embedding bypasses the mapping unchanged
    with pytest.raises(ValueError, match="ws must have shape"):
        G.apply(variables, ws[:, 1:], method="synthesis")
    with pytest.raises(ValueError, match="c must have shape"):
        G.apply(variables, z, None, method="mapping")


def test_residual_layer_given_noise(golden):
    _, variables, _ = golden  # the golden network's b16.convs1.1: residual, 16 channels, 8 groups
    layer = stylegan_t.SynthesisLayer(16, 16, w_dim=24, resolution=16, residual=True, gn_groups=8)
    layer_vars = {col: variables[col]["synthesis"]["b16"]["convs1.1"] for col in ("params", "buffers")}
    assert layer_vars["params"]["gamma"].shape == (1, 16, 1, 1)
    assert layer_vars["params"]["affine"]["proj"]["weight"].shape == (48, 24)
    x, w = jnp.sin(jnp.arange(2 * 16 * 16 * 16.0)).reshape(2, 16, 16, 16), jnp.ones((2, 24))
    noise = jnp.ones((2, 16, 16, 1))  # the trainer's noise for noise_mode 'random', as in StyleGAN2

    @jax.jit
    def run(layer_vars, x, w, noise):
        given = layer.apply({**layer_vars, "noise_inputs": {"noise": noise}}, x, w, noise_mode="random")
        return given, layer.apply(layer_vars, x, w, noise_mode="none")

    given, none = run(layer_vars, x, w, noise)
    assert given.shape == (2, 16, 16, 16) and not np.allclose(given, none)


def test_official_widths_and_num_ws():
    def blocks(G):
        specs = stylegan_t.block_specs(G.img_resolution, G.settings)
        return [(s["resolution"], s["in_channels"], s["out_channels"]) for s in specs], G.num_ws

    lite = Generator(z_dim=64, conditional=True, img_resolution=64, synthesis_kwargs=stylegan_t.CONFIGS["lite"])
    assert (lite.c_dim, lite.w_dim) == (768, 832)
    assert blocks(lite) == ([(8, 0, 512), (16, 512, 512), (32, 512, 512), (64, 512, 512)], 4 * 5 + 1)
    full = Generator(z_dim=64, conditional=True, img_resolution=512, synthesis_kwargs=stylegan_t.CONFIGS["full"])
    assert blocks(full)[0][-3:] == [(128, 1024, 512), (256, 512, 256), (512, 256, 128)]
    assert blocks(full)[1] == 7 * 7 + 1
    assert Generator(z_dim=64, conditional=False, img_resolution=32).w_dim == 64
    with pytest.raises(ValueError, match="unsupported synthesis_kwargs"):
        Generator(z_dim=8, conditional=False, img_resolution=16, synthesis_kwargs={"bogus": 1}).num_ws


def test_clip_entries_of_official_state_dict():
    sd = {"mapping.x_avg": np.zeros(8), "mapping.clip.model.ln_final.weight": np.ones(16),
          "mapping.clip.model.text_projection": np.ones((16, 16))}
    g_sd, clip_sd = stylegan_t.split_clip_state_dict(sd)
    assert set(g_sd) == {"mapping.x_avg"} and set(clip_sd) == {"ln_final.weight", "text_projection"}
    assert stylegan_t.init_kwargs_from_state_dict({"z_dim": 8}, sd) == {"z_dim": 8, "clip_dim": 16}


def test_official_state_dict_with_its_clip_encoder_loads_and_round_trips():
    """A G state dict as the official pickles hold it (CLIP text encoder inside): the CLIP width sets
    clip_dim, the CLIP entries are left to the text tower, and the rest round-trips exactly."""
    data = np.load(GOLDEN)
    kwargs = json.loads(str(data["meta/init_kwargs"]))
    sd = {k[3:]: data[k] for k in data.files if k.startswith("sd/")}
    width = data["c"].shape[1]
    clip = {"mapping.clip.model.ln_final.weight": np.ones(width, np.float32),
            "mapping.clip.model.text_projection": np.ones((width, width), np.float32)}
    G, variables = from_official_state_dict(CLASS_NAME, kwargs, {**sd, **clip})
    assert G.clip_dim == width
    back = to_official_state_dict(G, variables)
    assert set(back) == set(sd)
    for name, value in sd.items():
        np.testing.assert_array_equal(back[name], value, err_msg=name)
