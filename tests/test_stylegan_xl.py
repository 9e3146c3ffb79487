"""StyleGAN-XL generators against the official code: tests/data/xl_tiny_golden.npz holds tiny official
stems and superresolution stages (written by tests/data/make_xl_golden.py); we load their state
dicts through the registered class names and compare ws, truncation, class-wise w_avg and magnitude
EMA updates, designed filters and images, then grow a stage ourselves and check the head-only mask.

Every compilation of a network costs seconds on the CPU, so images are rendered for three of the
five golden networks (a stem, a radial stage, the two-stage network), which hold every kind of layer."""
import functools
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import relative_error
from stylegan_jax.convert import from_official_state_dict, to_official_state_dict
from stylegan_jax.convert.state_dict import NETWORK_CLASSES, build_network, flatten_variables, network_spec
from stylegan_jax.networks import stylegan_xl
from stylegan_jax.networks.stylegan_xl import (ClassMappingNetwork, SuperresGenerator, grow_from_stem,
                                               head_only_mask, superres_init_kwargs)
from stylegan_jax.ops.filter_design import design_lowpass_filter

GOLDEN = pathlib.Path(__file__).parent / "data" / "xl_tiny_golden.npz"
XL_G = "training.networks_stylegan3_resetting.Generator"
XL_SR = "training.networks_stylegan3_resetting.SuperresGenerator"
# Measured: ws, truncated ws 1.5e-7..2.5e-7, w_avg updates 6e-8..8e-8, images 4.0e-7..6.2e-7, magnitude EMAs
# <= 1.1e-7 (float32 rounding of the same arithmetic).
TOL = 1e-5
PSI, CUTOFF = 0.6, 3
NETS = [("t", "stem"), ("t", "superres1"), ("t", "superres2"), ("r", "stem"), ("r", "superres1")]
RENDERED = [("t", "stem"), ("r", "superres1"), ("t", "superres2")]


@functools.lru_cache(maxsize=None)
def _golden() -> dict:
    with np.load(GOLDEN, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _state_dict(prefix: str) -> dict:
    start = f"{prefix}/sd/"
    return {key[len(start):]: value for key, value in _golden().items() if key.startswith(start)}


def _official(variant: str, net: str) -> tuple[str, dict]:
    """The official class name and our constructor kwargs of a golden network (a stage's combine its stems')."""
    kwargs = json.loads(str(_golden()[f"{variant}/stem/meta/init_kwargs"]))
    if net == "stem":
        return XL_G, kwargs
    for stage in range(1, int(net.removeprefix("superres")) + 1):
        kwargs = superres_init_kwargs(kwargs, json.loads(str(_golden()[f"{variant}/superres{stage}/meta/init_kwargs"])))
    return XL_SR, kwargs


@functools.lru_cache(maxsize=None)
def _load(variant: str, net: str):
    """(module, variables) from the golden official state dict, through the registered class name."""
    return from_official_state_dict(*_official(variant, net), _state_dict(f"{variant}/{net}"))


def _labels(prefix: str) -> np.ndarray:
    return np.argmax(_golden()[f"{prefix}/c"], axis=1)


@pytest.mark.parametrize("variant,net", NETS)
def test_mapping_matches_official(variant, net):
    """ws at psi 1 and truncated towards each sample's class centre, and the class-wise w_avg update."""
    G, variables = _load(variant, net)
    prefix = f"{variant}/{net}"
    z, c = _golden()[f"{prefix}/z"], _golden()[f"{prefix}/c"]
    ws, updated = G.apply(variables, z, c, method="mapping", update_emas=True, mutable=["buffers"])
    ws_trunc = G.apply(variables, z, c, truncation_psi=PSI, truncation_cutoff=CUTOFF, method="mapping")
    assert ws.shape == (len(z), G.num_ws, G.w_dim)
    assert relative_error(ws, _golden()[f"{prefix}/ws"]) < TOL
    assert relative_error(ws_trunc, _golden()[f"{prefix}/ws_trunc"]) < TOL
    w_avg = updated["buffers"]["mapping"]["w_avg"]
    assert relative_error(w_avg, _golden()[f"{prefix}/w_avg_updated"]) < TOL
    before = variables["buffers"]["mapping"]["w_avg"]
    absent = np.setdiff1d(np.arange(G.c_dim), _labels(prefix))
    np.testing.assert_array_equal(np.asarray(w_avg)[absent], np.asarray(before)[absent])


@pytest.mark.parametrize("variant,net", RENDERED)
def test_images_match_official(variant, net):
    """Stems: images of ws and truncated ws. Stages: the image of a call that updates the magnitude EMAs
    (which the layers then use) and the updated EMAs, the stem's layers at the stem's beta (0.9 here)
    and the head's at the official default 0.999."""
    G, variables = _load(variant, net)
    prefix = f"{variant}/{net}"
    nchw = lambda image: np.transpose(np.asarray(image), (0, 3, 1, 2))
    if net == "stem":
        render = jax.jit(lambda v, ws: G.apply(v, ws, method="synthesis", noise_mode="const"))
        images = render(variables, jnp.concatenate([_golden()[f"{prefix}/ws"], _golden()[f"{prefix}/ws_trunc"]]))
        for case, image in zip(("img", "img_trunc"), np.split(nchw(images), 2)):
            assert relative_error(image, _golden()[f"{prefix}/{case}"]) < TOL, case
        return
    render = jax.jit(lambda v, ws: G.apply(v, ws, method="synthesis", noise_mode="const", update_emas=True,
                                           mutable=["buffers"]))
    image, updated = render(variables, _golden()[f"{prefix}/ws"])
    assert relative_error(nchw(image), _golden()[f"{prefix}/img_updated"]) < TOL
    for name, _ in G.synthesis_layers():
        magnitude = updated["buffers"]["synthesis"][name]["magnitude_ema"]
        assert relative_error(magnitude, _golden()[f"{prefix}/mag_updated/{name}"]) < TOL, name
        assert magnitude != variables["buffers"]["synthesis"][name]["magnitude_ema"]


def _designed_filters(kwargs: dict) -> dict:
    """The low-pass filters of a SynthesisLayer with these arguments, by the official rules."""
    torgb = kwargs["is_torgb"]
    tmp_rate = max(kwargs["in_sampling_rate"], kwargs["out_sampling_rate"]) * (1 if torgb else kwargs["lrelu_upsampling"])
    filters = {}
    for side, rate in (("up", kwargs["in_sampling_rate"]), ("down", kwargs["out_sampling_rate"])):
        factor = int(round(tmp_rate / rate))
        taps = kwargs["filter_size"] * factor if factor > 1 and not torgb else 1
        where = "in" if side == "up" else "out"
        radial = side == "down" and kwargs["use_radial_filters"] and not kwargs["is_critically_sampled"]
        if taps > 1:
            filters[f"{side}_filter"] = design_lowpass_filter(taps, kwargs[f"{where}_cutoff"],
                                                              2 * kwargs[f"{where}_half_width"], tmp_rate, radial=radial)
    return filters


@pytest.mark.parametrize("variant,net", NETS)
def test_layer_plans_design_the_official_filters(variant, net):
    """The frequency plan of every layer (stem and heads) gives the official filters and head defaults."""
    G, _ = _load(variant, net)
    official = _state_dict(f"{variant}/{net}")
    layers = G.synthesis_layers()
    stored = {name.split(".")[1] + "." + name.split(".")[2] for name in official if name.endswith("_filter")}
    assert stored == {f"{name}.{kind}" for name, kwargs in layers for kind in _designed_filters(kwargs)}
    for name, kwargs in layers:
        for kind, taps in _designed_filters(kwargs).items():
            np.testing.assert_allclose(taps, official[f"synthesis.{name}.{kind}"], rtol=1e-5, atol=1e-7,
                                       err_msg=f"{name}.{kind}")
    # The layers of every head (not only the last stage's) take the official SynthesisLayer defaults.
    stem_layers = len(layers) if net == "stem" else G.num_layers - G.num_critical
    for idx, (name, kwargs) in enumerate(layers):
        expected = (G.magnitude_ema_beta, G.conv_clamp) if idx < stem_layers else (0.999, 256)
        assert (kwargs["magnitude_ema_beta"], kwargs["conv_clamp"]) == expected, name


def test_truncation_pulls_towards_each_class_centre():
    G, variables = _load("t", "stem")
    z, c = _golden()["t/stem/z"], _golden()["t/stem/c"]
    ws = G.apply(variables, z, c, method="mapping")
    ws0 = G.apply(variables, z, c, truncation_psi=0.0, truncation_cutoff=CUTOFF, method="mapping")
    centres = np.asarray(variables["buffers"]["mapping"]["w_avg"])[_labels("t/stem")]
    np.testing.assert_allclose(ws0[:, :CUTOFF], np.broadcast_to(centres[:, None], (len(z), CUTOFF, G.w_dim)),
                               rtol=0, atol=1e-6)
    np.testing.assert_array_equal(ws0[:, CUTOFF:], ws[:, CUTOFF:])


def test_unconditional_mapping_tracks_one_centre():
    """Without labels w_avg is one [w_dim] vector moved towards the batch mean; the embedding table still exists."""
    mapping = ClassMappingNetwork(z_dim=4, c_dim=0, w_dim=6, num_ws=3, w_avg_beta=0.5, num_embeddings=3,
                                  embedding_dim=2)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((5, 4)).astype(np.float32)
    # Random values in the initialised shapes (no compiled initialisers: they cost seconds on the CPU).
    shapes = jax.eval_shape(mapping.init, jax.random.key(1), z, None)
    variables = jax.tree_util.tree_map(lambda x: rng.standard_normal(x.shape).astype(np.float32), shapes)
    assert variables["params"]["embed"]["weight"].shape == (3, 2) and "embed_proj" not in variables["params"]
    assert variables["buffers"]["w_avg"].shape == (6,)
    ws, updated = mapping.apply(variables, z, None, update_emas=True, mutable=["buffers"])
    expected = 0.5 * (np.mean(ws[:, 0], axis=0) + variables["buffers"]["w_avg"])
    np.testing.assert_allclose(updated["buffers"]["w_avg"], expected, rtol=1e-6, atol=1e-6)
    ws_half = mapping.apply({**variables, **updated}, z, None, truncation_psi=0.5)
    np.testing.assert_allclose(ws_half, updated["buffers"]["w_avg"] + 0.5 * (ws - updated["buffers"]["w_avg"]),
                               rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def grown():
    """A x2 stage grown from the golden T stem with our own initialisation of the head."""
    stem, stem_variables = _load("t", "stem")
    module, variables = grow_from_stem(stem, stem_variables, head_layers=3, up_factor=2, key=jax.random.key(7))
    return stem, stem_variables, module, variables


def test_grow_from_stem_copies_the_stem_and_builds_the_official_head(grown):
    stem, stem_variables, module, variables = grown
    assert module == _load("t", "superres1")[0].clone(path_stem=None)
    ours = {name: leaf for name, (_, _, leaf) in flatten_variables(variables).items()}
    official = _state_dict("t/superres1")
    assert {name: np.shape(leaf) for name, leaf in ours.items()} == {name: np.shape(v) for name, v in official.items()}
    for name in ours:  # the designed filters are the official ones
        if name.endswith("_filter"):
            np.testing.assert_allclose(ours[name], official[name], rtol=1e-6, atol=1e-7, err_msg=name)

    kept, head = module.layer_names()
    assert head == json.loads(str(_golden()["t/superres1/head_layer_names"]))
    stem_leaves = {name: leaf for name, (_, _, leaf) in flatten_variables(stem_variables).items()}
    copied = [name for name in ours if name.split(".")[0] == "mapping" or name.split(".")[1] in ["input", *kept]]
    assert len(copied) > 0 and all(name in stem_leaves for name in copied)
    for name in copied:
        np.testing.assert_array_equal(ours[name], stem_leaves[name], err_msg=name)
    for name in head:  # fresh, officially initialised head layers
        layer = variables["params"]["synthesis"][name]
        np.testing.assert_array_equal(layer["affine"]["bias"], 1.0)
        np.testing.assert_array_equal(layer["bias"], 0.0)
        assert np.std(layer["weight"]) > 0.5
        assert variables["buffers"]["synthesis"][name]["magnitude_ema"] == 1.0


def test_grown_stage_maps_like_its_stem_and_is_a_stem_itself(grown):
    """The grown stage maps z like its stem (into more ws), and describes the next stage like the official code."""
    stem, stem_variables, module, variables = grown
    z, c = _golden()["t/stem/z"], _golden()["t/stem/c"]
    ws = module.apply(variables, z, c, method="mapping")
    assert ws.shape == (len(z), 9, module.w_dim)
    np.testing.assert_array_equal(ws[:, 0], stem.apply(stem_variables, z, c, method="mapping")[:, 0])
    fields = {name: getattr(module, name) for name in module.__dataclass_fields__ if name not in ("parent", "name")}
    second = SuperresGenerator(**superres_init_kwargs(fields, dict(head_layers=3, up_factor=2)))
    assert (second.head_layers, second.up_factor, second.img_resolution, second.num_ws) == ((3, 3), (2, 2), 64, 10)
    assert second == _load("t", "superres2")[0].clone(path_stem=None)


@pytest.mark.parametrize("variant,net", [("r", "superres1"), ("t", "superres2")])
def test_head_only_mask_marks_exactly_the_head(variant, net):
    G, variables = _load(variant, net)
    head = json.loads(str(_golden()[f"{variant}/{net}/head_layer_names"]))
    for train_input in (False, True):
        mask = head_only_mask(G, variables["params"], train_input=train_input)
        assert jax.tree_util.tree_structure(mask) == jax.tree_util.tree_structure(variables["params"])
        marked = {name for name, (_, _, leaf) in flatten_variables({"params": mask}).items() if leaf}
        trainable = set(head) | ({"input"} if train_input else set())
        expected = {name for name in flatten_variables({"params": variables["params"]})
                    if name.startswith("synthesis.") and name.split(".")[1] in trainable}
        assert marked == expected and len(marked) == 4 * len(head) + 3 * train_input


def test_registered_class_names_round_trip():
    assert NETWORK_CLASSES[XL_G] == "stylegan_jax.networks.stylegan_xl:Generator"
    assert NETWORK_CLASSES[XL_SR] == "stylegan_jax.networks.stylegan_xl:SuperresGenerator"
    for variant, net in [("t", "stem"), ("t", "superres2")]:
        G, _ = _load(variant, net)
        assert type(G) is (stylegan_xl.Generator if net == "stem" else SuperresGenerator)
        # The embedding table's size, absent from official kwargs, came from the state dict.
        assert (G.mapping_kwargs["num_embeddings"], G.mapping_kwargs["embedding_dim"]) == (7, 12)
        assert set(to_official_state_dict(G, _load(variant, net)[1])) == set(_state_dict(f"{variant}/{net}"))
        class_name, kwargs = network_spec(G)
        assert class_name == (XL_G if net == "stem" else XL_SR)
        assert build_network(class_name, json.loads(json.dumps(kwargs))) == G


def test_superres_kwargs_are_checked():
    stem_kwargs = _official("t", "stem")[1]
    with pytest.raises(ValueError, match="img_resolution"):
        superres_init_kwargs(stem_kwargs, dict(img_resolution=48, up_factor=2))
    with pytest.raises(ValueError, match="c_dim"):
        superres_init_kwargs(stem_kwargs, dict(c_dim=3))
    with pytest.raises(ValueError, match="head_layers must exceed"):
        SuperresGenerator(**superres_init_kwargs(stem_kwargs, dict(head_layers=2))).num_ws


def test_style_layers_of_a_stage_follow_the_ws_order():
    """SeFa's layer list counts the layers of a stage by position (their numbers skip the stem's dropped ones)."""
    from stylegan_jax.sampling.directions import style_layers

    G, variables = _load("t", "superres2")
    layers = style_layers(G, variables["params"])
    assert [layer.path[1] for layer in layers] == [name for name, _ in G.synthesis_layers()]
    assert [layer.ws_index for layer in layers] == list(range(1, G.num_ws))
    assert [layer.is_torgb for layer in layers] == [False] * (G.num_ws - 2) + [True]
