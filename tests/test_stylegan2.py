"""StyleGAN2 generator and discriminator at parity with the official networks (golden files)."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import relative_error
from golden_nets import assert_param_gradients_match, load_golden_network, nchw, official_state_dict
from stylegan_jax.convert import from_official_state_dict, to_official_state_dict
from stylegan_jax.networks.discriminator import Discriminator
from stylegan_jax.networks.stylegan2 import Generator

TOL = 1e-4


@pytest.fixture(scope="module")
def gen():
    data, G, variables = load_golden_network("sg2_64_G.npz")
    return data, G, variables


@pytest.fixture(scope="module")
def disc():
    return load_golden_network("sg2_64_D.npz")


@pytest.fixture(scope="module")
def gen_forward(gen):
    _, G, _ = gen
    return jax.jit(lambda v, z, c, psi, cutoff, noise_mode, fused: G.apply(
        v, z, c, truncation_psi=psi, truncation_cutoff=cutoff, noise_mode=noise_mode, fused_modconv=fused),
        static_argnums=(4, 5, 6))


@pytest.mark.parametrize("key, psi, cutoff", [
    ("psi1", 1.0, None), ("psi0.7", 0.7, None), ("psi0.7_cutoff", 0.7, "meta")])
def test_mapping_and_images_match_official(gen, gen_forward, key, psi, cutoff):
    data, G, v = gen
    cutoff = int(data["meta/trunc_cutoff"]) if cutoff == "meta" else None
    z, c = data["input/z"], data["input/c"]
    ws = G.apply(v, z, c, truncation_psi=psi, truncation_cutoff=cutoff, method="mapping")
    assert ws.shape == (z.shape[0], int(data["meta/num_ws"]), G.w_dim)
    assert relative_error(ws, data[f"output/ws_{key}"]) < TOL
    img = gen_forward(v, z, c, psi, cutoff, "const", None)
    assert img.dtype == jnp.float32 and img.shape == (z.shape[0], 64, 64, 3)
    assert relative_error(nchw(img), data[f"output/img_{key}"]) < TOL


@pytest.mark.parametrize("noise_mode, fused, key", [
    ("none", None, "img_psi1_noise_none"), ("const", False, "img_psi1_unfused"), ("const", True, "img_psi1")])
def test_noise_none_and_unfused_modconv_match_official(gen, gen_forward, noise_mode, fused, key):
    data, _, v = gen
    img = gen_forward(v, data["input/z"], data["input/c"], 1.0, None, noise_mode, fused)
    assert relative_error(nchw(img), data[f"output/{key}"]) < TOL


def test_style_mixing_matches_official(gen):
    data, G, v = gen
    cutoff = int(data["meta/mix_cutoff"])
    ws = G.apply(v, data["input/z"], data["input/c"], method="mapping")
    ws2 = G.apply(v, data["input/z2"], data["input/c"], method="mapping")
    assert relative_error(ws2, data["output/ws2_psi1"]) < TOL
    mixed = jnp.concatenate([ws[:, :cutoff], ws2[:, cutoff:]], axis=1)
    assert relative_error(mixed, data["output/ws_mix"]) < TOL
    img = jax.jit(lambda v, ws: G.apply(v, ws, noise_mode="const", method="synthesis"))(v, mixed)
    assert relative_error(nchw(img), data["output/img_mix"]) < TOL


def test_update_emas_updates_w_avg_like_official(gen):
    data, G, v = gen
    _, updated = G.apply(v, data["input/z"], data["input/c"], update_emas=True, mutable=["buffers"])
    new = updated["buffers"]["mapping"]["w_avg"]
    expected = data["output/after_update_emas/mapping.w_avg"]
    assert relative_error(new, expected) < TOL
    assert not np.allclose(new, v["buffers"]["mapping"]["w_avg"])
    # Without update_emas nothing changes.
    _, same = G.apply(v, data["input/z"], data["input/c"], mutable=["buffers"])
    np.testing.assert_array_equal(same["buffers"]["mapping"]["w_avg"], v["buffers"]["mapping"]["w_avg"])


def test_generator_gradients_match_official(gen, conv_path):
    data, G, v = gen
    cotangent = np.transpose(data["input/img_cotangent"], (0, 2, 3, 1))

    def loss(params, z):
        return jnp.sum(G.apply({**v, "params": params}, z, data["input/c"]) * cotangent)

    value, (grad_params, grad_z) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(v["params"], data["input/z"])
    assert relative_error(value, data["output/loss"]) < TOL
    assert relative_error(grad_z, data["grad/z"]) < TOL
    assert_param_gradients_match(grad_params, data)

    ws = G.apply(v, data["input/z"], data["input/c"], method="mapping")
    grad_ws = jax.jit(jax.grad(lambda ws: jnp.sum(G.apply(v, ws, method="synthesis") * cotangent)))(ws)
    assert relative_error(grad_ws, data["grad/ws"]) < TOL


def test_discriminator_logits_and_gradients_match_official(disc, conv_path):
    data, D, v = disc
    img = np.transpose(data["input/img"], (0, 2, 3, 1))
    logits = D.apply(v, img, data["input/c"])
    assert logits.shape == (img.shape[0], 1)
    assert relative_error(logits, data["output/logits"]) < TOL

    def loss(params, img):
        return jnp.sum(D.apply({**v, "params": params}, img, data["input/c"]))

    grad_params, grad_img = jax.jit(jax.grad(loss, argnums=(0, 1)))(v["params"], img)
    assert relative_error(nchw(grad_img), data["grad/img"]) < TOL
    assert_param_gradients_match(grad_params, data)


@pytest.mark.parametrize("fixture", ["gen", "disc"])
def test_round_trip_to_official_is_exact(request, fixture):
    data, module, variables = request.getfixturevalue(fixture)
    original = official_state_dict(data)
    back = to_official_state_dict(module, variables)
    assert set(back) == set(original)
    for name, value in original.items():
        np.testing.assert_array_equal(back[name], value, err_msg=name)


def test_missing_unknown_and_misshaped_entries_are_named(gen):
    data, _, _ = gen
    class_name, kwargs = str(data["meta/class_name"]), json.loads(str(data["meta/init_kwargs"]))
    sd = official_state_dict(data)
    missing = {k: v for k, v in sd.items() if k != "synthesis.b8.conv0.affine.weight"}
    with pytest.raises(ValueError, match="synthesis.b8.conv0.affine.weight"):
        from_official_state_dict(class_name, kwargs, missing)
    with pytest.raises(ValueError, match="synthesis.b8.extra"):
        from_official_state_dict(class_name, kwargs, {**sd, "synthesis.b8.extra": np.zeros(3)})
    with pytest.raises(ValueError, match="mapping.fc0.weight"):
        from_official_state_dict(class_name, kwargs, {**sd, "mapping.fc0.weight": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="not_an_argument"):
        from_official_state_dict(class_name, {**kwargs, "not_an_argument": 1}, sd)
    with pytest.raises(ValueError, match="unsupported network class"):
        from_official_state_dict("training.networks_stylegan2.Nope", kwargs, sd)


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_conditional_networks_of_every_architecture_run(architecture):
    key = jax.random.key(0)
    G = Generator(z_dim=16, c_dim=3, w_dim=16, img_resolution=16, img_channels=3, channel_base=128,
                  channel_max=16, num_fp16_res=0, architecture=architecture, mapping_kwargs={"num_layers": 2})
    D = Discriminator(c_dim=3, img_resolution=16, img_channels=3, channel_base=128, channel_max=16,
                      architecture=architecture, mapping_kwargs={"num_layers": 2})
    z, c = jax.random.normal(key, (4, 16)), jax.nn.one_hot(jnp.arange(4) % 3, 3)
    gv = G.init({"params": key}, z, c)
    # Fresh noise strengths are zero; make the noise visible.
    gv = {**gv, "params": jax.tree_util.tree_map_with_path(
        lambda p, x: x + 0.5 if p[-1].key == "noise_strength" else x, gv["params"])}
    img = G.apply(gv, z, c, noise_mode="random", rngs={"noise": key})
    assert img.shape == (4, 16, 16, 3) and bool(jnp.all(jnp.isfinite(img)))
    assert set(gv["params"]["mapping"]) >= {"embed", "fc0", "fc1"}
    dv = D.init({"params": key}, img, c)
    logits = D.apply(dv, img, c)
    assert logits.shape == (4, 1) and bool(jnp.all(jnp.isfinite(logits)))
    assert "mapping" in dv["params"]
    # Random noise really is random, const noise is repeatable.
    other = G.apply(gv, z, c, noise_mode="random", rngs={"noise": jax.random.key(1)})
    assert not np.allclose(img, other)


def test_bfloat16_compute_stays_close_to_float32(gen):
    data, G, v = gen
    G16 = G.clone(num_fp16_res=4, compute_dtype=jnp.bfloat16)
    img32 = G.apply(v, data["input/z"], data["input/c"])
    img16 = G16.apply(v, data["input/z"], data["input/c"])
    assert img16.dtype == jnp.float32
    err = relative_error(img16, img32)
    assert 0 < err < 0.05, err


@pytest.mark.parametrize("kwargs, message", [
    (dict(img_resolution=48), "img_resolution: must have sides that are powers of two"),
    (dict(architecture="unet"), "architecture"),
])
def test_bad_generator_configuration_is_rejected(kwargs, message):
    base = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, channel_base=64, channel_max=8)
    G = Generator(**{**base, **kwargs})
    with pytest.raises(ValueError, match=message):
        G.init(jax.random.key(0), *G.example_inputs())


def test_wrong_input_shapes_are_rejected(gen, disc):
    data, G, v = gen
    with pytest.raises(ValueError, match="z must have shape"):
        G.apply(v, data["input/z"][:, :5], None)
    with pytest.raises(ValueError, match="ws must have shape"):
        G.apply(v, jnp.zeros((1, 3, G.w_dim)), method="synthesis")
    _, D, dv = disc
    with pytest.raises(ValueError, match="images must be NHWC"):
        D.apply(dv, jnp.zeros((1, 3, 64, 64)), None)


def test_load_official_pickle_reproduces_golden_outputs(tmp_path, gen, disc):
    import official_pickle_writer as writer
    from golden_nets import official_state_dict
    from stylegan_jax.convert import load_official_pickle

    def record(data):
        return writer.network_record(str(data["meta/class_name"]), json.loads(str(data["meta/init_kwargs"])),
                                     official_state_dict(data))

    gdata, ddata = gen[0], disc[0]
    path = tmp_path / "network-snapshot.pkl"
    with open(path, "wb") as f:
        writer.dump({"G": record(gdata), "D": record(ddata), "G_ema": record(gdata),
                     "training_set_kwargs": {"resolution": 64}}, f)
    nets = load_official_pickle(path)
    assert set(nets) == {"G", "D", "G_ema"}
    G, gv = nets["G_ema"]
    img = G.apply(gv, gdata["input/z"], gdata["input/c"])
    assert relative_error(nchw(img), gdata["output/img_psi1"]) < TOL
    D, dv = nets["D"]
    logits = D.apply(dv, np.transpose(ddata["input/img"], (0, 2, 3, 1)), ddata["input/c"])
    assert relative_error(logits, ddata["output/logits"]) < TOL
