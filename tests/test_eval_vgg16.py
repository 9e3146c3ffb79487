"""Precision/recall's VGG16: NHWC Flax forward vs an NCHW reference, weight files, and its use by the metric."""
import collections
import io
import pickle
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import official_pickle_writer as writer
from stylegan_jax import eval as sg_eval
from stylegan_jax.eval import metrics
from stylegan_jax.eval.inputs import Generator, RealImages
from stylegan_jax.eval.precision_recall import precision_recall
from stylegan_jax.perceptual import vgg16
from stylegan_jax.perceptual.weight_files import MissingWeightsError

# Small stand-ins for the real (64, 128, 256, 512, 512) widths, 4096-d fcs and 7x7 final map (224 input).
WIDTHS, FC, SIDE = (3, 4, 5, 6, 7), 8, 2
RES, Z_DIM = 8, 4


def _random_tensors(seed: int = 0, side: int = SIDE) -> dict[str, np.ndarray]:
    """torchvision-named VGG16 tensors of the small widths, plus the classifier.6 logits layer."""
    rng = np.random.default_rng(seed)
    tensors, in_channels, index = {}, 3, 0
    for width, depth in zip(WIDTHS, vgg16.STAGE_DEPTHS):
        for _ in range(depth):
            i = vgg16.CONV_INDICES[index]
            tensors[f"features.{i}.weight"] = rng.normal(0, np.sqrt(2 / (9 * in_channels)), (width, in_channels, 3, 3))
            tensors[f"features.{i}.bias"] = rng.normal(0, 0.1, width)
            in_channels, index = width, index + 1
    flat = in_channels * side * side
    tensors["classifier.0.weight"] = rng.normal(0, np.sqrt(2 / flat), (FC, flat))
    tensors["classifier.3.weight"] = rng.normal(0, np.sqrt(2 / FC), (FC, FC))
    tensors["classifier.6.weight"] = rng.normal(0, 1, (10, FC))
    for i in (0, 3, 6):
        tensors[f"classifier.{i}.bias"] = rng.normal(0, 0.1, tensors[f"classifier.{i}.weight"].shape[0])
    return {name: value.astype(np.float32) for name, value in tensors.items()}


def _reference_fc2(tensors: dict[str, np.ndarray], images: np.ndarray) -> np.ndarray:
    """Caffe preprocessing and VGG16 to fc2, computed NCHW with torchvision's layouts and flattening."""
    x = jnp.asarray(images, jnp.float32).transpose(0, 3, 1, 2)[:, ::-1]
    x = x - jnp.asarray(vgg16.CAFFE_BGR_MEAN)[None, :, None, None]
    hp = jax.lax.Precision.HIGHEST
    index = 0
    for depth in vgg16.STAGE_DEPTHS:
        for _ in range(depth):
            i = vgg16.CONV_INDICES[index]
            x = jax.lax.conv_general_dilated(x, tensors[f"features.{i}.weight"], (1, 1), ((1, 1), (1, 1)),
                                             dimension_numbers=("NCHW", "OIHW", "NCHW"), precision=hp)
            x = jax.nn.relu(x + tensors[f"features.{i}.bias"][None, :, None, None])
            index += 1
        n, c, h, w = x.shape
        x = x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
    x = x.reshape(x.shape[0], -1)
    for i in (0, 3):
        weight, bias = tensors[f"classifier.{i}.weight"], tensors[f"classifier.{i}.bias"]
        x = jax.nn.relu(jnp.matmul(x, weight.T, precision=hp) + bias)
    return np.asarray(x)


def _write_torch_state_dict(path, tensors: dict[str, np.ndarray]) -> None:
    """A torch.save zip of a state dict, as torch writes it (storages in archive/data/<key>)."""
    class StorageRef:
        def __init__(self, key, array):
            self.pid = ("storage", writer.STORAGE_CLASSES[array.dtype], key, "cpu", array.size)

    state = collections.OrderedDict(
        (name, writer.Call(writer.REBUILD_TENSOR_V2, StorageRef(str(k), value), 0, value.shape,
                           tuple(s // value.itemsize for s in value.strides), False, collections.OrderedDict()))
        for k, (name, value) in enumerate(tensors.items()))
    f = io.BytesIO()
    with writer._placeholder_modules():  # pylint: disable=protected-access
        pickler = pickle.Pickler(f, protocol=2)
        pickler.persistent_id = lambda obj: obj.pid if isinstance(obj, StorageRef) else None
        pickler.dump(state)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", f.getvalue())
        for k, value in enumerate(tensors.values()):
            archive.writestr(f"archive/data/{k}", np.ascontiguousarray(value).astype("<f4").tobytes())
        archive.writestr("archive/version", "3\n")


@pytest.fixture(scope="module")
def tensors():
    return _random_tensors()


@pytest.fixture(scope="module")
def weights_npz(tensors, tmp_path_factory):
    path = tmp_path_factory.mktemp("vgg16") / "vgg16_small.npz"
    np.savez(path, **tensors)
    return path


def test_nhwc_forward_equals_the_nchw_reference(tensors, weights_npz):
    images = np.random.default_rng(1).integers(0, 256, (3, 32 * SIDE, 32 * SIDE, 3), dtype=np.uint8)
    net = sg_eval.vgg16_fc2(weights_npz)
    features = net(images)
    expected = _reference_fc2(tensors, images)
    assert features.shape == (3, FC) and np.count_nonzero(expected) > FC  # ReLU outputs, not all zero
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    assert net.name.startswith("vgg16-fc2-vgg16_small-")


def test_torch_state_dict_zip_gives_the_npz_features(tensors, weights_npz, tmp_path):
    path = tmp_path / "vgg16_small.pt"
    _write_torch_state_dict(path, tensors)
    images = np.random.default_rng(2).integers(0, 256, (2, 40, 40, 3), dtype=np.uint8)  # resized to 64
    np.testing.assert_allclose(sg_eval.vgg16_fc2(path)(images), sg_eval.vgg16_fc2(weights_npz)(images), rtol=1e-6)


def test_architecture_is_read_from_the_tensors():
    module, params = vgg16.vgg16_params(_random_tensors(side=7))
    assert (module.widths, module.fc_width, module.input_size) == (WIDTHS, FC, 224)
    assert params["fc1"]["kernel"].shape == (7 * 7 * WIDTHS[-1], FC)


def test_bad_weight_files_are_explained(tensors, tmp_path):
    with pytest.raises(MissingWeightsError, match="nope.npz' does not exist"):
        sg_eval.vgg16_fc2(tmp_path / "nope.npz")
    missing = {k: v for k, v in tensors.items() if k not in ("features.28.bias", "classifier.3.weight")}
    np.savez(tmp_path / "missing.npz", **missing)
    with pytest.raises(ValueError, match=r"missing.npz: missing tensor\(s\) features.28.bias, classifier.3.weight"):
        sg_eval.vgg16_fc2(tmp_path / "missing.npz")
    np.savez(tmp_path / "shape.npz", **dict(tensors, **{"features.7.weight": np.zeros((4, 5, 3, 3), np.float32)}))
    with pytest.raises(ValueError, match=r"features.7.weight has shape \(4, 5, 3, 3\), expected \(4, 4, 3, 3\)"):
        sg_eval.vgg16_fc2(tmp_path / "shape.npz")
    (tmp_path / "junk.bin").write_bytes(b"not weights")
    with pytest.raises(ValueError, match="unsupported weights format"):
        sg_eval.vgg16_fc2(tmp_path / "junk.bin")


def _toy_generate(z, c):
    pattern = jnp.sin(jnp.arange(RES * RES * 3, dtype=jnp.float32) * 0.3).reshape(RES, RES, 3)
    return jnp.tanh(pattern[None] + z[:, :3, None, None].transpose(0, 2, 3, 1))


def test_pr_with_vgg16_weights_uses_its_features_and_the_official_name(weights_npz, tmp_path):
    real_images = np.random.default_rng(3).integers(0, 256, (200, RES, RES, 3), dtype=np.uint8)
    opts = sg_eval.MetricOptions(Generator(_toy_generate, Z_DIM), RealImages("toy", real_images),
                                 cache_dir=tmp_path, vgg16_weights=weights_npz)
    results = sg_eval.run_metrics(["pr1k3_full"], opts)[0]["results"]
    net = sg_eval.vgg16_fc2(weights_npz)
    generated = np.concatenate([b for _, b in zip(range(16), metrics._generated_batches(opts))])[:1000]
    precision, recall = precision_recall(net(real_images), net(generated), nhood_size=3)
    assert results == pytest.approx({"pr1k3_full_precision": precision, "pr1k3_full_recall": recall}, abs=1e-6)
    assert 0 < precision < 1 or 0 < recall < 1   # informative values, not a degenerate 0/1 pair
    (cached,) = tmp_path.glob("toy-*.npz")  # the real statistics are VGG16 features
    np.testing.assert_allclose(np.load(cached)["rows"], net(real_images), rtol=1e-6)
