"""Reading official 2019 StyleGAN TensorFlow pickles (G, D, Gs of dnnlib.tflib.network.Network) without TF."""
import functools
import io
import os
import pickle

import jax
import numpy as np
import PIL.Image
import pytest
from flax import traverse_util

import official_pickle_writer as w
import tf1_pickle_writer as tw
from stylegan_jax import generate as generate_cli
from stylegan_jax.convert import load_official_pickle
from stylegan_jax.convert.tf1_pickle import is_stylegan2019_pickle, read_stylegan2019_pickle
from stylegan_jax.networks.stylegan2019 import Discriminator, Generator
from stylegan_jax.sampling import generate_images
from stylegan_jax.tree_shapes import shape_mismatches

# Official static kwargs (G_style passes them on to G_mapping and G_synthesis) and our equivalents.
G_KWARGS = dict(num_channels=3, resolution=16, label_size=2, latent_size=8, dlatent_size=8, fmap_base=32,
                fmap_max=16, mapping_layers=2, mapping_fmaps=8, truncation_psi=0.7)
D_KWARGS = dict(num_channels=3, resolution=16, label_size=2, fmap_base=32, fmap_max=16, fused_scale=True)
G = Generator(z_dim=8, c_dim=2, w_dim=8, img_resolution=16, img_channels=3, channel_base=64, channel_max=16,
              mapping_kwargs={"num_layers": 2, "layer_features": 8})
D = Discriminator(c_dim=2, img_resolution=16, img_channels=3, channel_base=64, channel_max=16, fused_scale=True)


def _shapes(module):
    return jax.eval_shape(module.init, jax.random.key(0), *module.example_inputs(2))


def _random_variables(module, seed):
    """The module's variable tree with every leaf random (lods 0.25), as float32 numpy arrays."""
    rng = np.random.default_rng(seed)
    flat = traverse_util.flatten_dict(_shapes(module))
    return traverse_util.unflatten_dict({
        keys: np.float32(0.25) * np.ones(np.shape(v), np.float32) if keys[-1] == "lod"
        else rng.standard_normal(np.shape(v)).astype(np.float32) for keys, v in flat.items()})


@pytest.fixture(scope="module")
def original():
    return {"G": _random_variables(G, 1), "D": _random_variables(D, 2), "G_ema": _random_variables(G, 3)}


def _networks(original, g_kwargs=G_KWARGS, d_kwargs=D_KWARGS, module_src=tw.MODULE_SRC):
    return [tw.generator("G", original["G"], g_kwargs, G.num_ws, module_src),
            tw.discriminator("D", original["D"], d_kwargs),
            tw.generator("Gs", original["G_ema"], g_kwargs, G.num_ws, module_src)]


def _pickled(networks) -> io.BytesIO:
    f = io.BytesIO()
    tw.dump(tuple(networks), f)
    f.seek(0)
    return f


@pytest.fixture(scope="module")
def pkl(original, tmp_path_factory):
    path = tmp_path_factory.mktemp("tf1") / "karras2019stylegan-tiny-16x16.pkl"
    path.write_bytes(_pickled(_networks(original)).getvalue())
    return path


def test_every_variable_lands_where_expected_bit_for_bit(original, tmp_path):
    marker = tmp_path / "source-ran"
    f = _pickled(_networks(original, module_src=f"import pathlib; pathlib.Path({str(marker)!r}).touch()\n"))

    nets = read_stylegan2019_pickle(f)

    assert not marker.exists()  # the pickled build_module_src is never executed
    assert set(nets) == {"G", "D", "G_ema"}
    assert nets["D"][0] == D
    assert nets["G_ema"][0].clone(mapping_kwargs=G.mapping_kwargs) == G
    assert dict(nets["G_ema"][0].mapping_kwargs) == dict(num_layers=2, layer_features=8, lr_multiplier=0.01,
                                                        w_avg_beta=0.995)
    for key, module in (("G", G), ("D", D), ("G_ema", G)):
        loaded_module, variables = nets[key]
        assert type(loaded_module) is type(module)
        assert shape_mismatches(variables, _shapes(module)) == []
        expected = traverse_util.flatten_dict(original[key])
        actual = traverse_util.flatten_dict(variables)
        assert actual.keys() == expected.keys()
        for name, value in actual.items():
            assert isinstance(value, np.ndarray) and value.dtype == np.float32, name
            assert value.tobytes() == np.asarray(expected[name]).tobytes(), name


def test_loaded_networks_compute_like_the_originals(original, pkl):
    nets = read_stylegan2019_pickle(pkl)
    z = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
    c = np.eye(2, dtype=np.float32)
    images = _apply(*nets["G_ema"], z, c)
    np.testing.assert_array_equal(images, _apply(G, original["G_ema"], z, c))
    np.testing.assert_array_equal(_apply(*nets["D"], images, c), _apply(D, original["D"], images, c))


@functools.partial(jax.jit, static_argnums=0)
def _apply(module, variables, x, c):
    return module.apply(variables, x, c)


def test_generate_and_the_library_loader_read_the_file(original, pkl, tmp_path):
    assert is_stylegan2019_pickle(pkl)
    assert set(load_official_pickle(pkl)) == {"G", "D", "G_ema"}
    rc = generate_cli.main([f"--network={pkl}", "--seeds=3", "--class=1", f"--outdir={tmp_path}"])
    assert rc == 0
    expected = generate_images(G, original["G_ema"], [3], class_idx=1)[0]
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(tmp_path / "seed0003.png")), expected)


def test_snapshot_pickles_are_not_taken_for_tf1_pickles():
    snapshot = io.BytesIO()
    w.dump({"G": w.module_record("Generator")}, snapshot)
    snapshot.seek(3)
    assert not is_stylegan2019_pickle(snapshot) and snapshot.tell() == 3
    assert not is_stylegan2019_pickle(io.BytesIO(b"not a pickle"))


def test_malicious_global_is_refused_and_never_runs(original, tmp_path):
    marker = tmp_path / "pwned"
    networks = _networks(original, g_kwargs={**G_KWARGS, "fmap_max": w.Call(os.system, f"touch {marker}")})
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load global (posix|nt|os)\.system") as error:
        read_stylegan2019_pickle(_pickled(networks))
    assert "\n" not in str(error.value)
    assert not marker.exists()


class _HugeArray:
    """Pickles as a float32 array that claims 2**40 elements but holds 4 bytes."""

    def __reduce__(self):
        func, args, _ = np.zeros(1, np.float32).__reduce__()
        return func, args, (1, (1 << 40,), np.dtype(np.float32), False, b"\0" * 4)


def _drop(network, name):
    network.state["variables"] = [(key, value) for key, value in network.state["variables"] if key != name]
    return network


def _reshape(network, name):
    network.state["variables"] = [(key, value[..., :1] if key == name else value)
                                  for key, value in network.state["variables"]]
    return network


@pytest.mark.parametrize("edit, error, message", [
    (lambda n: _drop(n[2].state["components"]["synthesis"], "4x4/Conv/weight"), ValueError,
     "Gs: missing variable 'G_synthesis/4x4/Conv/weight'"),
    (lambda n: _drop(n[0].state["components"]["synthesis"], "noise3"), ValueError,
     "G: missing variable 'G_synthesis/noise3'"),
    (lambda n: _reshape(n[1], "8x8/Conv0/weight"), ValueError,
     r"D: variable '8x8/Conv0/weight' has shape \(3, 3, 8, 1\), expected \(3, 3, 8, 8\)"),
    (lambda n: n[1].state["variables"].append(("Extra/weight", np.zeros(2, np.float32))), ValueError,
     r"D: unexpected variable\(s\) \['Extra/weight'\]"),
    (lambda n: n[0].state["components"]["synthesis"].state["static_kwargs"].update(use_styles=False), ValueError,
     "G/G_synthesis: unsupported option use_styles=False"),
    (lambda n: n[1].state["static_kwargs"].update(structure="fixed"), ValueError,
     "D: unsupported option structure='fixed'"),
    (lambda n: n[2].state["components"]["mapping"].state["static_kwargs"].update(mapping_nonlinearity="relu"),
     ValueError, "Gs/G_mapping: unsupported option mapping_nonlinearity='relu'"),
    (lambda n: n[1].state.update(build_func_name="D_stylegan2"), ValueError,
     "not a 2019 StyleGAN pickle: D is built by 'D_stylegan2', expected 'D_basic'"),
    (lambda n: n[0].state.update(static_kwargs=[1]), ValueError, "G: static_kwargs must be a dict"),
    (lambda n: n[1].state["variables"].append(("lod", _HugeArray())), pickle.UnpicklingError,
     r"numpy array of shape \(1099511627776,\) and dtype float32 does not match its data"),
])
def test_bad_networks_give_one_line_errors(original, edit, error, message):
    networks = _networks(original)
    edit(networks)
    with pytest.raises(error, match=message) as raised:
        read_stylegan2019_pickle(_pickled(networks))
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("data, error, message", [
    (pickle.dumps((1, 2, 3), protocol=4), ValueError, "not a 2019 StyleGAN pickle: expected the tuple"),
    (b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x14dnnlib.tflib.network", pickle.UnpicklingError,
     "truncated"),
    (b"\x80\x02cdnnlib.tflib.network\nNetwork\n)\x81]b.", pickle.UnpicklingError,
     "its state must be one dict"),
])
def test_malformed_files_give_one_line_errors(data, error, message):
    with pytest.raises(error, match=message) as raised:
        read_stylegan2019_pickle(io.BytesIO(data))
    assert "\n" not in str(raised.value)
