"""The 2019 StyleGAN networks: their layers against the paper's formulas, truncation, the fused
resampling convs, and progressive growing's fade (also for StyleGAN2's 'progressive' architecture)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import relative_error
from stylegan_jax.networks import discriminator as sg2_d
from stylegan_jax.networks import stylegan2 as sg2
from stylegan_jax.networks import stylegan2019 as sg
from stylegan_jax.ops import progressive as ops
from stylegan_jax.ops.upfirdn2d import upsample2d
from stylegan_jax.ops.filters import setup_filter

RNG = np.random.default_rng(0)
G_ARGS = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, channel_base=64, channel_max=16,
              mapping_kwargs={"num_layers": 2, "layer_features": 8})
D_ARGS = dict(c_dim=0, img_resolution=16, img_channels=3, channel_base=64, channel_max=16)


def _randomised(variables, seed=1):
    """The variables with every parameter (including zero-initialised biases and noise strengths) random."""
    leaves, tree = jax.tree_util.tree_flatten(variables["params"])
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    params = [0.5 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)]
    return {**variables, "params": jax.tree_util.tree_unflatten(tree, params)}


def _with_lod(variables, lod):
    from stylegan_jax.training.progressive import _with_lod as set_lod

    return set_lod(variables, jnp.float32(lod))


def _lrelu(x):
    return np.where(x >= 0, x, 0.2 * x)


def _conv_same(x, w):
    """NHWC 'SAME' correlation in float64 with an HWIO kernel."""
    k = w.shape[0]
    xp = np.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
    h, wd = x.shape[1:3]
    return sum(np.einsum("nhwc,co->nhwo", xp[:, i:i + h, j:j + wd], w[i, j]) for i in range(k) for j in range(k))


def test_styled_layer_is_conv_noise_bias_lrelu_instance_norm_adain():
    layer = sg.StyledLayer(features=4, resolution=8)
    x = jnp.asarray(RNG.standard_normal((2, 8, 8, 3)), jnp.float32)
    w = jnp.asarray(RNG.standard_normal((2, 6)), jnp.float32)
    variables = _randomised(layer.init({"params": jax.random.key(0)}, x, w, "const"))
    out = layer.apply(variables, x, w, "const")

    p = jax.tree_util.tree_map(np.float64, variables["params"])
    noise = np.float64(variables["buffers"]["Noise"]["noise_const"])[None, :, :, None]
    y = _conv_same(np.float64(x), p["weight"] * np.sqrt(2) / np.sqrt(9 * 3))   # equalised lr, He gain
    y = _lrelu(y + noise * p["Noise"]["weight"] + p["bias"])                     # noise, then bias, then lrelu
    y = (y - y.mean(axis=(1, 2), keepdims=True)) / np.sqrt(y.var(axis=(1, 2), keepdims=True) + 1e-8)
    style = np.float64(w) @ (p["StyleMod"]["weight"] / np.sqrt(6)) + p["StyleMod"]["bias"]
    expected = y * (style[:, None, None, :4] + 1) + style[:, None, None, 4:]     # AdaIN
    assert relative_error(out, expected) < 1e-5


def test_mapping_pixel_norm_and_equalised_lr_with_lr_multiplier():
    mapping = sg.LatentMapping(z_dim=5, c_dim=0, w_dim=3, num_ws=4, num_layers=1, layer_features=3)
    z = jnp.asarray(RNG.standard_normal((2, 5)) * 3, jnp.float32)
    variables = _randomised(mapping.init({"params": jax.random.key(0)}, z, None))
    ws = mapping.apply(variables, z, None)
    p = jax.tree_util.tree_map(np.float64, variables["params"]["Dense0"])
    zn = np.float64(z) / np.sqrt(np.mean(np.float64(z) ** 2, axis=1, keepdims=True) + 1e-8)
    expected = _lrelu(zn @ (p["weight"] * np.sqrt(2) / np.sqrt(5) * 0.01) + p["bias"] * 0.01)
    assert ws.shape == (2, 4, 3)
    assert relative_error(ws[:, 2], expected) < 1e-5


def test_truncation_default_cutoff_is_eight_layers():
    G = sg.Generator(**{**G_ARGS, "img_resolution": 64})
    z = jnp.asarray(RNG.standard_normal((3, 8)), jnp.float32)
    variables = G.init({"params": jax.random.key(0)}, z, None)
    avg = jnp.asarray(RNG.standard_normal(8), jnp.float32)
    variables = {**variables, "buffers": {**variables["buffers"], "mapping": {"dlatent_avg": avg}}}
    plain = G.apply(variables, z, None, method="mapping", truncation_psi=1.0)
    truncated = G.apply(variables, z, None, method="mapping", truncation_psi=0.7)
    assert G.num_ws == 10
    np.testing.assert_allclose(truncated[:, :8], avg + 0.7 * (plain[:, :8] - avg), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(truncated[:, 8:], plain[:, 8:])


def test_dlatent_avg_tracks_the_batch_mean_with_beta_0995():
    G = sg.Generator(**G_ARGS)
    z = jnp.asarray(RNG.standard_normal((4, 8)), jnp.float32)
    variables = G.init({"params": jax.random.key(0)}, z, None)
    ws, updated = G.apply(variables, z, None, method="mapping", update_emas=True, mutable=["buffers"])
    np.testing.assert_allclose(updated["buffers"]["mapping"]["dlatent_avg"], 0.005 * np.mean(ws[:, 0], axis=0),
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("size", [8, 16])
def test_fused_resampling_convs_equal_the_separate_ops(size):
    x = jnp.asarray(RNG.standard_normal((2, size, size, 3)), jnp.float32)
    w = jnp.asarray(RNG.standard_normal((3, 3, 3, 5)), jnp.float32)
    assert relative_error(ops.upscale_conv(x, w, True), ops.upscale_conv(x, w, False)) < 1e-6
    assert relative_error(ops.conv_downscale(x, w, True), ops.conv_downscale(x, w, False)) < 1e-6


def test_fused_networks_compute_the_same_as_separate():
    z = jnp.asarray(RNG.standard_normal((4, 8)), jnp.float32)
    G, Gf = sg.Generator(**G_ARGS, fused_scale=False), sg.Generator(**G_ARGS, fused_scale=True)
    g_vars = _randomised(G.init({"params": jax.random.key(0)}, z, None))
    assert relative_error(Gf.apply(g_vars, z, None), G.apply(g_vars, z, None)) < 1e-5
    img = jnp.asarray(RNG.standard_normal((4, 16, 16, 3)), jnp.float32)
    D, Df = sg.Discriminator(**D_ARGS, fused_scale=False), sg.Discriminator(**D_ARGS, fused_scale=True)
    d_vars = _randomised(D.init({"params": jax.random.key(0)}, img))
    assert relative_error(Df.apply(d_vars, img), D.apply(d_vars, img)) < 1e-5


def test_discriminator_label_switch_scores_the_labels_output():
    D = sg.Discriminator(**{**D_ARGS, "c_dim": 3})
    img = jnp.asarray(RNG.standard_normal((4, 16, 16, 3)), jnp.float32)
    c = jnp.asarray(RNG.uniform(size=(4, 3)), jnp.float32)
    variables = _randomised(D.init({"params": jax.random.key(0)}, img, c))
    scores, captured = D.apply(variables, img, c, capture_intermediates=True, mutable=["intermediates"])
    outputs = captured["intermediates"]["4x4"]["__call__"][0]  # Dense1: one output per label
    assert outputs.shape == (4, 3)
    np.testing.assert_allclose(scores[:, 0], np.sum(outputs * c, axis=1), rtol=1e-6, atol=1e-6)


# ---- progressive growing: a level's network against the official full-resolution 'linear' one ----

NETWORKS = {
    "stylegan2019": (lambda: sg.Generator(**G_ARGS), lambda: sg.Discriminator(**D_ARGS), ops.upscale_nearest),
    "stylegan2_progressive": (
        lambda: sg2.Generator(**{k: v for k, v in G_ARGS.items() if k != "mapping_kwargs"},
                              mapping_kwargs={"num_layers": 2}, architecture="progressive"),
        lambda: sg2_d.Discriminator(**D_ARGS, architecture="progressive"),
        lambda img: upsample2d(img, setup_filter([1, 3, 3, 1]))),
}


@pytest.fixture(scope="module", params=sorted(NETWORKS))
def nets(request):
    make_g, make_d, upscale = NETWORKS[request.param]
    G, D = make_g(), make_d()
    z = jnp.asarray(RNG.standard_normal((4, 8)), jnp.float32)
    g_vars = _randomised(G.init({"params": jax.random.key(0)}, z, None))
    d_vars = _randomised(D.init({"params": jax.random.key(1)}, *D.example_inputs(4)))
    return G, D, upscale, z, g_vars, d_vars


def _render(G, variables, z, level, lod):
    net = G if level == 16 else G.clone(level_resolution=level)
    return net.apply(_with_lod(variables, lod), z, None, noise_mode="const")


@pytest.mark.parametrize("lod", [1.0, 1.3, 1.999])
def test_level_generator_is_the_full_one_at_that_lod(nets, lod):
    """The official generator outputs full resolution at every lod; a level's network gives the same
    image at its own size (the full one is its up-scaled copy)."""
    G, _, upscale, z, g_vars, _ = nets
    level = _render(G, g_vars, z, 8, lod)
    assert level.shape == (4, 8, 8, 3)
    assert relative_error(upscale(level), _render(G, g_vars, z, 16, lod)) < 1e-5


def test_fade_ends_alpha_zero_is_the_upscaled_lower_level_alpha_one_the_new_output(nets):
    G, _, upscale, z, g_vars, _ = nets
    lower = _render(G, g_vars, z, 8, 1.0)
    assert relative_error(_render(G, g_vars, z, 16, 1.0), upscale(lower)) < 1e-6  # alpha 0
    # alpha 1: the 8x8 toRGB no longer matters
    new = _render(G, g_vars, z, 16, 0.0)
    def lower_torgb(path):
        keys = [getattr(k, "key", None) for k in path]
        return "ToRGB_lod1" in keys or ("b8" in keys and "torgb" in keys)

    tweaked = jax.tree_util.tree_map_with_path(lambda path, x: x + 1.0 if lower_torgb(path) else x, g_vars)
    np.testing.assert_allclose(_render(G, tweaked, z, 16, 0.0), new, rtol=1e-6, atol=1e-6)
    halfway = _render(G, g_vars, z, 16, 0.25)
    assert relative_error(halfway, 0.75 * new + 0.25 * upscale(lower)) < 1e-5


@pytest.mark.parametrize("lod", [1.0, 1.4])
def test_level_discriminator_is_the_full_one_on_upscaled_images(nets, lod):
    """The official discriminator sees the level's images up-scaled (nearest) to full resolution."""
    _, D, _, _, _, d_vars = nets
    img = jnp.asarray(RNG.standard_normal((4, 8, 8, 3)), jnp.float32)
    level = D.clone(level_resolution=8).apply(_with_lod(d_vars, lod), img)
    full = D.apply(_with_lod(d_vars, lod), ops.upscale_nearest(img))
    assert relative_error(level, full) < 1e-5


def test_level_resolution_needs_a_progressive_architecture():
    G = sg2.Generator(**{k: v for k, v in G_ARGS.items() if k != "mapping_kwargs"}, level_resolution=8)
    with pytest.raises(ValueError, match="level_resolution needs architecture 'progressive'"):
        G.init({"params": jax.random.key(0)}, *G.example_inputs())
