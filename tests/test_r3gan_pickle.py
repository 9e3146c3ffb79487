"""R3GAN training snapshots (networks pickled by value, no constructor arguments) load safely."""
import io
import json
import pickle

import numpy as np
import pytest

import official_pickle_writer as w
import r3gan_pickle_writer as rw
from conftest import relative_error
from golden_nets import load_golden_network, nchw, official_state_dict
from stylegan_jax.convert import load_official_pickle
from stylegan_jax.convert.official_pickle import read_official_pickle
from stylegan_jax.convert.r3gan_kwargs import r3gan_init_kwargs, resampling_filter
from stylegan_jax.networks.r3gan_layers import lowpass_taps
from stylegan_jax.ops.filters import setup_filter

DEFAULTS = dict(KernelSize=3, ResamplingFilter=[1, 2, 1])
G_BFLOAT16, D_BFLOAT16 = [1, 2, 3], [0, 1, 2]  # the CIFAR10 preset's FP16Stages, as stage indices


def _golden(name):
    data, module, variables = load_golden_network(name)
    return data, json.loads(str(data["meta/init_kwargs"])), official_state_dict(data)


def _snapshot_file(g_state, d_state, **extra) -> io.BytesIO:
    g = rw.network("training.networks.Generator", g_state, G_BFLOAT16, z_dim=64, c_dim=3, img_resolution=32)
    d = rw.network("training.networks.Discriminator", d_state, D_BFLOAT16)
    snapshot = dict(G=g, D=d, G_ema=g, training_set_kwargs={"resolution": 32, "use_labels": True}, cur_nimg=4096,
                    G_opt_state=rw.optimizer_state(3), D_opt_state=rw.optimizer_state(2), **extra)
    f = io.BytesIO()
    w.dump(snapshot, f)
    f.seek(0)
    return f


@pytest.mark.parametrize("name", ["r3gan_32_G.npz", "r3gan_32c_G.npz", "r3gan_32_D.npz", "r3gan_32c_D.npz"])
def test_constructor_arguments_are_read_off_the_state_dict(name):
    data, kwargs, state = _golden(name)
    assert r3gan_init_kwargs(str(data["meta/class_name"]), state, []) == {**DEFAULTS, **kwargs}


@pytest.mark.parametrize("taps", [[1, 2, 1], [1, 3, 3, 1], [1], [1, 0.5, 0.25]])
def test_the_resampling_filter_is_recovered_from_its_kernel(taps):
    assert resampling_filter(setup_filter(lowpass_taps(taps))) == pytest.approx(taps, abs=1e-6)


def test_snapshot_networks_load_with_their_arguments_and_compute_the_golden_outputs():
    gdata, g_kwargs, g_state = _golden("r3gan_32c_G.npz")
    ddata, d_kwargs, d_state = _golden("r3gan_32c_D.npz")
    snapshot = read_official_pickle(_snapshot_file(g_state, d_state))
    assert set(snapshot) == {"G", "D", "G_ema", "training_set_kwargs", "unreadable"}
    assert snapshot["G"].class_name == "training.networks.Generator"
    assert snapshot["G"].init_kwargs == {**DEFAULTS, **g_kwargs, "FP16Stages": G_BFLOAT16}
    assert snapshot["D"].init_kwargs == {**DEFAULTS, **d_kwargs, "FP16Stages": D_BFLOAT16}
    for name, value in g_state.items():
        assert snapshot["G_ema"].state_dict[name].tobytes() == value.tobytes(), name

    nets = load_official_pickle(_snapshot_file(g_state, d_state))
    G, gv = nets["G_ema"]
    assert relative_error(nchw(G.apply(gv, gdata["input/z"], gdata["input/c"])), gdata["output/img"]) < 1e-5
    D, dv = nets["D"]
    logits = D.apply(dv, np.transpose(ddata["input/img"], (0, 2, 3, 1)), ddata["input/c"])
    assert relative_error(logits, ddata["output/logits"]) < 1e-5


def test_foreign_classes_and_malformed_modules_are_refused():
    _, _, g_state = _golden("r3gan_32_G.npz")
    _, _, d_state = _golden("r3gan_32_D.npz")
    stranger = rw.torch_module("R3GAN.Networks.Stranger")
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global R3GAN.Networks.Stranger"):
        read_official_pickle(_snapshot_file(g_state, d_state, extra=stranger))
    broken = rw.torch_module("R3GAN.Networks.ResidualBlock")
    del broken.__dict__["_modules"]
    with pytest.raises(pickle.UnpicklingError, match="malformed state of a pickled R3GAN.Networks.ResidualBlock"):
        read_official_pickle(_snapshot_file(g_state, d_state, extra=broken))
    f = io.BytesIO()
    w.dump({"G": rw.torch_module("torch.nn.modules.linear.Linear", {"weight": np.ones((2, 2), np.float32)})}, f)
    f.seek(0)
    with pytest.raises(ValueError, match="unsupported network class 'torch.nn.modules.linear.Linear'"):
        read_official_pickle(f)
