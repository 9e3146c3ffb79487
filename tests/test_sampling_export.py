"""Export format round trips, official pickles as a source, and load_generator's dispatch and errors."""
import json
import pickle

import jax
import numpy as np
import pytest

from stylegan_jax import checkpoint
from stylegan_jax.convert.state_dict import build_network, from_official_state_dict, network_spec
from stylegan_jax.sampling import (
    GeneratorLoadError, export_generator, export_state_dict, generate_images, load_exported, load_generator)
from test_sampling_nets import official_pickle, sg2, sg3, training_checkpoint

SEEDS = [0, 1, 2]


def _assert_same_variables(actual, expected):
    flat_a = jax.tree_util.tree_leaves_with_path(actual)
    flat_e = jax.tree_util.tree_leaves_with_path(expected)
    assert [p for p, _ in flat_a] == [p for p, _ in flat_e]
    for (path, a), (_, e) in zip(flat_a, flat_e):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e), err_msg=str(path))


@pytest.mark.parametrize("net", [sg2, sg3], ids=["sg2", "sg3"])
@pytest.mark.parametrize("folder", [False, True], ids=["file", "folder"])
def test_export_round_trip_gives_identical_images(net, folder, tmp_path):
    G, variables = net()
    path = export_generator(tmp_path / ("g" if folder else "g.msgpack"), G, variables, folder=folder)
    assert path.is_dir() == folder
    loaded_G, loaded_variables = load_generator(path)
    assert network_spec(loaded_G) == (network_spec(G)[0], json.loads(json.dumps(network_spec(G)[1])))
    _assert_same_variables(loaded_variables, variables)
    np.testing.assert_array_equal(generate_images(loaded_G, loaded_variables, SEEDS, truncation_psi=0.7),
                                  generate_images(G, variables, SEEDS, truncation_psi=0.7))


def test_official_pickle_gives_the_images_of_its_source_variables(tmp_path):
    G, variables = sg2()
    raw_variables = jax.tree_util.tree_map(lambda x: x * 0.5 + 0.1, variables)
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(official_pickle(G, variables, raw_variables))
    _, loaded_raw = load_generator(path, raw=True)
    _assert_same_variables(loaded_raw, raw_variables)
    loaded_G, loaded_variables = load_generator(path)
    _assert_same_variables(loaded_variables, variables)
    np.testing.assert_array_equal(generate_images(loaded_G, loaded_variables, SEEDS),
                                  generate_images(G, variables, SEEDS))


def test_network_spec_inverts_build_network():
    G, _ = sg3()
    class_name, init_kwargs = network_spec(G)
    assert class_name == "training.networks_stylegan3.Generator"
    assert init_kwargs["num_layers"] == 4 and "conv_kernel" not in init_kwargs  # defaults left out
    assert build_network(class_name, init_kwargs) == G


def test_state_dict_export_converts_back(tmp_path):
    G, variables = sg2()
    path = export_state_dict(tmp_path / "g.npz", G, variables)
    with np.load(path) as data:
        meta = {key: data[key] for key in data.files if key.startswith("meta/")}
        state_dict = {key: data[key] for key in data.files if not key.startswith("meta/")}
    assert "synthesis.b8.conv0.affine.weight" in state_dict
    _, rebuilt = from_official_state_dict(str(meta["meta/class_name"]), json.loads(str(meta["meta/init_kwargs"])),
                                          state_dict)
    _assert_same_variables(rebuilt, variables)


def test_load_generator_errors(tmp_path):
    with pytest.raises(GeneratorLoadError, match="no such file"):
        load_generator(tmp_path / "missing.pkl")
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(GeneratorLoadError, match="not a network snapshot"):
        load_generator(tmp_path / "list.pkl")
    (tmp_path / "dict.pkl").write_bytes(pickle.dumps({"G_ema": None, "other": 1}))
    with pytest.raises(GeneratorLoadError, match="not a network snapshot"):
        load_generator(tmp_path / "dict.pkl")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(GeneratorLoadError, match="neither a network pickle nor a stylegan_jax export"):
        load_generator(tmp_path / "notes.txt")
    G, variables = sg2()
    path = export_generator(tmp_path / "g.msgpack", G, variables)
    with pytest.raises(GeneratorLoadError, match="step"):
        load_generator(path, step=3)
    with pytest.raises(GeneratorLoadError, match="an export holds one generator"):
        load_generator(path, raw=True)
    (tmp_path / "ema_only.pkl").write_bytes(official_pickle(G, variables))
    with pytest.raises(GeneratorLoadError, match=r"holds no raw generator G \(only \['G_ema'\]\)"):
        load_generator(tmp_path / "ema_only.pkl", raw=True)
    with pytest.raises(ValueError, match="not a stylegan_jax generator export"):
        load_exported(tmp_path / "notes.txt")


def test_training_checkpoint_in_a_relative_workdir(tmp_path, monkeypatch):
    G, variables = sg2()
    monkeypatch.chdir(tmp_path)
    training_checkpoint("runs/relative", G, variables, step=2)  # like --workdir=runs/relative
    assert checkpoint.checkpoint_dir("runs/relative") == str(tmp_path / "runs" / "relative" / "checkpoints")
    _assert_same_variables(load_generator("runs/relative")[1], variables)


def test_training_checkpoint_folder(tmp_path):
    G, variables = sg2()
    training_checkpoint(tmp_path / "run", G, variables, step=3)
    for step in (None, 3):
        loaded_G, loaded_variables = load_generator(tmp_path / "run", step=step)
        _assert_same_variables(loaded_variables, variables)
    np.testing.assert_array_equal(generate_images(loaded_G, loaded_variables, SEEDS),
                                  generate_images(G, variables, SEEDS))
    # The EMA generator is the default; the raw G of the same run (raw=True) gives other images.
    raw_G, raw_variables = checkpoint.load_generator(str(tmp_path / "run"), which="G")
    assert not np.array_equal(generate_images(raw_G, raw_variables, SEEDS), generate_images(G, variables, SEEDS))
    _, raw_loaded = load_generator(tmp_path / "run", raw=True)
    _assert_same_variables(raw_loaded, raw_variables)
    with pytest.raises(GeneratorLoadError, match="not found"):
        load_generator(tmp_path / "run", step=4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(GeneratorLoadError, match="no complete checkpoint"):
        load_generator(tmp_path / "empty")
