"""Tests for the torch-free, restricted reader of official network snapshot pickles."""
import collections
import io
import json
import os
import pickle

import numpy as np
import pytest

import official_pickle_writer as w
from conftest import load_golden
from stylegan_jax.convert.official_pickle import OfficialNetwork, read_official_pickle

TRAINING_SET_KWARGS = dict(class_name="training.dataset.ImageFolderDataset", path="/data/ffhq.zip",
                           use_labels=False, max_size=70000, xflip=True, resolution=64, random_seed=0)


def _golden_network(name):
    golden = load_golden(name)
    state_dict = {key: golden[key] for key in golden.files if "/" not in key}
    return str(golden["meta/class_name"]), json.loads(str(golden["meta/init_kwargs"])), state_dict


def _augment_pipe():
    buffers = {"p": np.array(0.25, np.float32), "Hz_geom": np.linspace(-1, 1, 12, dtype=np.float32),
               "Hz_fbank": np.eye(4, 7, dtype=np.float32)}
    return w.module_record("AugmentPipe", buffers=buffers, init_kwargs=w.EasyDict(xflip=1, rotate90=1, xint=1))


def _pickled(obj) -> io.BytesIO:
    f = io.BytesIO()
    w.dump(obj, f)
    f.seek(0)
    return f


def _assert_network(network, class_name, init_kwargs, state_dict):
    assert isinstance(network, OfficialNetwork)
    assert network.class_name == class_name
    assert network.init_kwargs == init_kwargs
    assert list(network.state_dict) == list(state_dict)
    for name, expected in state_dict.items():
        actual = network.state_dict[name]
        assert (actual.dtype, actual.shape) == (expected.dtype, expected.shape), name
        assert actual.tobytes() == expected.tobytes(), name


def test_reads_stylegan2_snapshot_bitwise(tmp_path):
    g, d = _golden_network("sg2_64_G.npz"), _golden_network("sg2_64_D.npz")
    snapshot = dict(G=w.network_record(*g), D=w.network_record(*d), G_ema=w.network_record(*g),
                    augment_pipe=_augment_pipe(), training_set_kwargs=dict(TRAINING_SET_KWARGS))
    path = tmp_path / "network-snapshot-000000.pkl"
    path.write_bytes(_pickled(snapshot).getvalue())

    result = read_official_pickle(str(path))

    assert set(result) == {"G", "D", "G_ema", "training_set_kwargs", "unreadable"} and result["unreadable"] == {}
    assert result["training_set_kwargs"] == TRAINING_SET_KWARGS
    _assert_network(result["G"], *g)
    _assert_network(result["G_ema"], *g)
    _assert_network(result["D"], *d)


@pytest.mark.parametrize("name", ["sg3t_64_G.npz", "sg3r_64_G.npz"])
def test_reads_partial_stylegan3_snapshot(name, tmp_path):
    g = _golden_network(name)
    path = tmp_path / "g_ema.pkl"
    path.write_bytes(_pickled({"G_ema": w.network_record(*g)}).getvalue())

    result = read_official_pickle(path)

    assert set(result) == {"G_ema", "training_set_kwargs", "unreadable"}
    assert result["training_set_kwargs"] is None
    assert g[0] == "training.networks_stylegan3.Generator"
    _assert_network(result["G_ema"], *g)


def test_stylegan2_ada_kwargs_become_plain_and_flat():
    init_kwargs = w.EasyDict(z_dim=8, w_dim=8, mapping_kwargs=w.EasyDict(num_layers=2, lr_multiplier=np.float64(0.01)),
                             synthesis_kwargs=w.EasyDict(channel_base=64, num_fp16_res=1, use_noise=np.bool_(True)),
                             img_size=np.array([4, 4]))
    record = w.module_record("Generator", modules={"synthesis": w.module_record("SynthesisNetwork")},
                             init_kwargs=init_kwargs)

    network = read_official_pickle(_pickled({"G": record}))["G"]

    assert network.class_name == "training.networks_stylegan2.Generator"
    assert network.init_kwargs == dict(z_dim=8, w_dim=8, mapping_kwargs=dict(num_layers=2, lr_multiplier=0.01),
                                       channel_base=64, num_fp16_res=1, use_noise=True, img_size=[4, 4])
    assert type(network.init_kwargs["mapping_kwargs"]["lr_multiplier"]) is float
    assert type(network.init_kwargs["use_noise"]) is bool


def test_state_dict_follows_torch_rules():
    record = w.module_record(
        "Discriminator",
        parameters={"weight": np.ones(2, np.float32), "bias": None},
        buffers={"filter": np.zeros(3, np.float32), "down_filter": None},
        modules={"b4": w.module_record("Block", parameters={"w": np.full(1, 7, np.float32)}), "empty": None})

    network = read_official_pickle(_pickled({"D": record}))["D"]

    assert network.class_name == "training.networks_stylegan2.Discriminator"
    assert list(network.state_dict) == ["weight", "filter", "b4.w"]


def test_views_and_dtypes_round_trip():
    storage = np.arange(24, dtype=np.float16)
    f64 = np.arange(100, dtype=np.float64)
    cases = {
        "fp16_view": (w.tensor(storage, 6, (3, 3), (6, 2)), storage.reshape(4, 6)[1:, ::2]),
        "transposed": (w.tensor(np.arange(12, dtype=np.float32), 0, (4, 3), (1, 4)),
                       np.arange(12, dtype=np.float32).reshape(3, 4).T),
        "offset_view": (w.tensor(f64, 11, (5, 3), (6, 2)), f64[10:40].reshape(5, 6)[:, 1::2]),
        "scalar": (w.tensor(np.array(3.5, np.float32)), np.array(3.5, np.float32)),
        "empty": (w.tensor(np.zeros((0, 3), np.float32)), np.zeros((0, 3), np.float32)),
    }
    for dtype in (np.float64, np.int64, np.int32, np.int16, np.int8, np.uint8, np.bool_):
        array = (np.arange(6) % 3).astype(dtype).reshape(2, 3)
        cases[np.dtype(dtype).name] = (w.tensor(array, parameter=True), array)
    record = w.module_record("Discriminator", buffers={name: t for name, (t, _) in cases.items()})

    state_dict = read_official_pickle(_pickled({"D": record}))["D"].state_dict

    for name, (_, expected) in cases.items():
        actual = state_dict[name]
        assert (actual.dtype, actual.shape) == (expected.dtype, expected.shape), name
        np.testing.assert_array_equal(actual, expected, err_msg=name)


@pytest.mark.parametrize("offset, size, stride", [(2, (3,), (1,)), (0, (4, 3), (0, 1)), (0, (1 << 40,), (0,))],
                         ids=["out_of_bounds", "expanded", "stride0_4tb"])
def test_view_beyond_its_storage_is_refused(offset, size, stride):
    record = w.module_record("Discriminator", buffers={"x": w.tensor(np.arange(4, dtype=np.float32), offset, size,
                                                                     stride)})
    with pytest.raises(pickle.UnpicklingError, match="does not fit its storage of 4 elements"):
        read_official_pickle(_pickled({"D": record}))


def _storage_stream_with(payload) -> bytes:
    header = b"".join(pickle.dumps(x, protocol=2) for x in (w.LEGACY_MAGIC, 1001, w.SYS_INFO))
    return header + pickle.dumps(payload, protocol=2)


def _tensor_of(storage):
    return w.Call(w.REBUILD_TENSOR_V2, storage, 0, (1,), (1,), False, collections.OrderedDict())


MALICIOUS = {
    "top_level": lambda p: p,
    "network": lambda p: {"G": p},
    "tensor_storage": lambda p: {"G": w.module_record("Generator", parameters={"w": _tensor_of(p)})},
    "storage_stream": lambda p: {"G": w.module_record("Generator", parameters={
        "w": _tensor_of(w.Call(w.LOAD_FROM_BYTES, _storage_stream_with(p)))})},
    "init_kwargs": lambda p: {"G": w.module_record("Generator", init_kwargs={"z_dim": p})},
    "submodule": lambda p: {"G": w.module_record("Generator", modules={"mapping": p})},
}


@pytest.mark.parametrize("where", sorted(MALICIOUS))
def test_code_execution_is_refused(where, tmp_path):
    marker = tmp_path / "pwned"
    payload = w.Call(os.system, f"touch {marker}")
    data = _pickled(MALICIOUS[where](payload))

    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load global \w+\.system"):
        read_official_pickle(data)
    assert not marker.exists()


def test_malicious_payload_is_live_under_plain_pickle(tmp_path):
    marker = tmp_path / "pwned"
    pickle.loads(_pickled(w.Call(os.system, f"touch {marker}")).getvalue())
    assert marker.exists()  # so the refusals above are meaningful


def test_eval_is_refused():
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global builtins.eval"):
        read_official_pickle(_pickled({"G": w.Call(eval, "1 + 1")}))


def test_allowed_globals_cannot_be_tampered_with():
    state = pickle.dumps((None, {"func": None}), protocol=2)[2:-1]  # BUILD state, minus PROTO and STOP
    data = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n" + state + b"b."
    with pytest.raises(pickle.UnpicklingError, match="torch._utils._rebuild_tensor_v2"):
        read_official_pickle(io.BytesIO(data))


@pytest.mark.parametrize("obj, message", [
    ([1, 2, 3], "not a network snapshot: the pickle holds a list"),
    ({"weights": 1}, r"not a network snapshot: none of \['G', 'D', 'G_ema'\]"),
    ({"G": 3}, "G: expected a persistent torch module, got int"),
    ({"G_ema": w.module_record("MappingNetwork")}, "G_ema: unsupported network class 'MappingNetwork'"),
])
def test_non_snapshots_are_rejected(obj, message):
    with pytest.raises(ValueError, match=message):
        read_official_pickle(_pickled(obj))
