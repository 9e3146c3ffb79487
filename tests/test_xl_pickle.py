"""StyleGAN-XL snapshots read safely: generators (stems and superresolution stages) load, the projected
discriminator (timm networks, pg_modules heads and dill-rebuilt functions) is read past without running
anything, and foreign globals elsewhere are still refused.

The snapshots are written like the official training loop's dill dump (see official_pickle_writer and
r3gan_pickle_writer), around the official state dicts of tests/data/xl_tiny_golden.npz."""
import json
import os
import pickle

import jax
import numpy as np
import pytest

import official_pickle_writer as w
import r3gan_pickle_writer as rw
from stylegan_jax.convert import from_official_state_dict, load_official_pickle
from stylegan_jax.convert.official_pickle import read_official_pickle
from stylegan_jax.convert.state_dict import build_network, flatten_variables
from stylegan_jax.training.loop import _resume_weights
from test_stylegan_xl import GOLDEN, XL_G, XL_SR, _golden, _official, _state_dict

PROJECTED_D = "pg_modules.discriminator.ProjectedDiscriminator"
CREATE_FUNCTION = w._stand_in("dill._dill", "_create_function")
CREATE_CODE = w._stand_in("dill._dill", "_create_code")

pytestmark = pytest.mark.skipif(not GOLDEN.exists(), reason=f"{GOLDEN} is missing")


def _meta(record: w.Call) -> dict:
    """The persistent meta (class name, state) a writer record pickles."""
    return record.args[0]


def _submodule(record: w.Call, name: str) -> w.Call:
    return _meta(record)["state"]["_modules"][name]


def _kwargs(prefix: str) -> dict:
    return json.loads(str(_golden()[f"{prefix}/meta/init_kwargs"]))


def _generator_record(class_name: str, init_kwargs: dict, state_dict: dict, stem_kwargs: dict | None = None,
                      layer_names: list | None = None):
    """A persistent XL generator whose class embedding is a by-reference torch.nn.Embedding; a stage's
    mapping and synthesis networks keep the kwargs the stem built them with, its synthesis the names
    of all its layers."""
    embedding = state_dict["mapping.embed.weight"]
    record = w.network_record(class_name, init_kwargs,
                              {k: v for k, v in state_dict.items() if k != "mapping.embed.weight"})
    _meta(_submodule(record, "mapping"))["state"]["_modules"]["embed"] = rw.torch_module(
        "torch.nn.modules.sparse.Embedding", parameters={"weight": embedding}, num_embeddings=embedding.shape[0])
    if stem_kwargs is not None:
        mapping = dict(stem_kwargs["mapping_kwargs"], z_dim=stem_kwargs["z_dim"], c_dim=stem_kwargs["c_dim"],
                       w_dim=stem_kwargs["w_dim"], num_ws=99)
        synthesis = {k: v for k, v in stem_kwargs.items() if k not in ("z_dim", "c_dim", "mapping_kwargs")}
        _meta(_submodule(record, "mapping"))["state"]["_init_kwargs"] = w.EasyDict(mapping)
        _meta(_submodule(record, "synthesis"))["state"]["_init_kwargs"] = w.EasyDict(synthesis)
        _meta(_submodule(record, "synthesis"))["state"]["layer_names"] = layer_names
    return record


def _stage_record(net: str, layer_names: list | None = None):
    """The golden stage `net` as a SuperresGenerator record (its own kwargs, its stem's in its networks),
    and our kwargs for it."""
    class_name, ours = _official("t", net)
    if layer_names is None:
        layer_names = [name for name, _ in build_network(class_name, ours).synthesis_layers()]
    record = _generator_record(XL_SR, _kwargs(f"t/{net}"), _state_dict(f"t/{net}"), _kwargs("t/stem"), layer_names)
    return record, ours


def _projected_d(extra=None):
    """A ProjectedDiscriminator as dill pickles it: modules by reference, a forward hook rebuilt from code."""
    hook = w.Call(CREATE_FUNCTION, w.Call(CREATE_CODE, 1, 0, b"\x97\x00y\x00"), {}, "get_activation")
    backbone = rw.torch_module("timm.models.efficientnet.EfficientNet", {"conv_stem.weight": np.ones((4, 3, 3, 3),
                                                                                                   np.float32)})
    backbone.__dict__["_forward_hooks"] = {0: hook}
    feature = rw.torch_module("pg_modules.projector.F_RandomProj", modules={"pretrained": backbone},
                              forward=w.Call(getattr, backbone, "forward"))
    modules = {"feature_networks": feature}
    if extra is not None:
        modules["extra"] = extra
    return rw.torch_module(PROJECTED_D, modules=modules, backbones=["tf_efficientnet_lite0"])


def _snapshot(path, generator, d=None) -> str:
    with open(path, "wb") as f:
        w.dump(dict(G=generator, D=_projected_d() if d is None else d, G_ema=generator, augment_pipe=None,
                    training_set_kwargs=dict(resolution=16)), f)
    return str(path)


def _assert_loaded(nets, class_name, kwargs, state_dict):
    _, expected = from_official_state_dict(class_name, kwargs, state_dict)
    theirs = {name: leaf for name, (_, _, leaf) in flatten_variables(expected).items()}
    for key in ("G", "G_ema"):
        _, variables = nets[key]
        ours = {name: leaf for name, (_, _, leaf) in flatten_variables(variables).items()}
        assert ours.keys() == theirs.keys()
        for name in ours:
            np.testing.assert_array_equal(np.asarray(ours[name]), np.asarray(theirs[name]), name)


def test_stem_snapshot_loads_its_generators_and_reads_past_the_projected_d(tmp_path):
    kwargs, state_dict = _kwargs("t/stem"), _state_dict("t/stem")
    path = _snapshot(tmp_path / "stem.pkl", _generator_record(XL_G, kwargs, state_dict))
    snapshot = read_official_pickle(path)
    assert snapshot["G_ema"].class_name == XL_G and snapshot["G_ema"].init_kwargs == kwargs
    assert snapshot["unreadable"] == {"D": PROJECTED_D} and "D" not in snapshot
    nets = load_official_pickle(path)
    assert sorted(nets) == ["G", "G_ema"]
    _assert_loaded(nets, XL_G, kwargs, state_dict)
    G, variables = nets["G_ema"]
    c = jax.nn.one_hot(np.arange(2), G.c_dim)
    ws = G.apply(variables, np.zeros((2, G.z_dim), np.float32), c, method="mapping")
    assert ws.shape == (2, G.num_ws, G.w_dim)


@pytest.mark.parametrize("net", ["superres1", "superres2"])
def test_superres_stages_recover_their_stem_and_earlier_stages(net, tmp_path):
    """A stage keeps its own head_layers/up_factor; the stem's come from its networks' kwargs and an
    earlier stage's (superres2 grew from superres1) from the layer names."""
    record, expected = _stage_record(net)
    snapshot = read_official_pickle(_snapshot(tmp_path / "stage.pkl", record))
    assert snapshot["G_ema"].class_name == XL_SR and snapshot["G_ema"].init_kwargs == expected
    _assert_loaded(load_official_pickle(tmp_path / "stage.pkl"), XL_SR, expected, _state_dict(f"t/{net}"))


def test_stages_that_do_not_fit_their_layers_are_named(tmp_path):
    record = _generator_record(XL_SR, _kwargs("t/superres1"), _state_dict("t/superres1"))
    with pytest.raises(ValueError, match="G: the stem's networks lack the kwargs"):
        read_official_pickle(_snapshot(tmp_path / "stage.pkl", record))
    record, _ = _stage_record("superres2", layer_names=["L0_36_64", "L1_36_64"])
    with pytest.raises(ValueError, match=r"G: the layers \['L0_36_64', 'L1_36_64'\] fit no chain\(s\) of "
                                         r"superresolution stages from a 16-pixel stem to 64 pixels"):
        read_official_pickle(_snapshot(tmp_path / "odd.pkl", record))


def test_foreign_globals_are_still_refused_inside_the_discriminator(tmp_path):
    marker = tmp_path / "pwned"
    record = _generator_record(XL_G, _kwargs("t/stem"), _state_dict("t/stem"))
    path = _snapshot(tmp_path / "bad.pkl", record, d=_projected_d(extra=w.Call(os.system, f"touch {marker}")))
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load global \w+\.system"):
        read_official_pickle(path)
    assert not marker.exists()


def test_a_discriminator_class_in_place_of_a_generator_part_is_named(tmp_path):
    record = _generator_record(XL_G, _kwargs("t/stem"), _state_dict("t/stem"))
    _meta(record)["state"]["_modules"]["head"] = rw.torch_module("timm.models.deit.VisionTransformerDistilled")
    with pytest.raises(ValueError, match="head: expected a torch module of a generator or discriminator, got "
                                         "timm.models.deit.VisionTransformerDistilled"):
        read_official_pickle(_snapshot(tmp_path / "odd.pkl", record))
    with pytest.raises(ValueError, match=f"G: its class {PROJECTED_D} cannot be read here"):
        read_official_pickle(_snapshot(tmp_path / "d.pkl", _projected_d()))


def test_resume_from_an_xl_snapshot_names_the_unreadable_d(tmp_path):
    path = _snapshot(tmp_path / "stem.pkl", _generator_record(XL_G, _kwargs("t/stem"), _state_dict("t/stem")))
    with pytest.raises(ValueError, match=r"config.resume: .*stem.pkl holds no readable D \(the projected D of a StyleGAN-XL"):
        _resume_weights(None, path)
