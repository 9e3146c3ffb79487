"""timm feature networks in Flax (EfficientNet-Lite, DeiT, ViT) against timm itself at random weights,
their loader's errors, and the .safetensors reader."""
import json
import pathlib

import torchvision_stub

torchvision_stub.install()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import relative_error  # noqa: E402

from stylegan_jax.networks import feature_nets  # noqa: E402
from stylegan_jax.perceptual import weight_files  # noqa: E402

timm = pytest.importorskip("timm")
torch = pytest.importorskip("torch")

TOLERANCE = 1e-4
EFFNET = "tf_efficientnet_lite0"


def _randomize_norms(model) -> None:
    """Random batch-norm statistics, norm affines and ViT tokens and position embeddings (none an identity)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features) + 0.5)
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
                m.weight.copy_(torch.rand(m.weight.shape) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape) * 0.2)
        for name in ("cls_token", "dist_token", "pos_embed"):
            if getattr(model, name, None) is not None:
                getattr(model, name).copy_(torch.randn(getattr(model, name).shape))


def _timm_model(arch: str, **kwargs):
    torch.manual_seed(0)
    model = timm.create_model(arch, pretrained=False, **kwargs).eval()
    _randomize_norms(model)
    return model


def _images(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _nchw(images: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


@pytest.fixture(scope="module")
def effnet(tmp_path_factory):
    """The full timm model's state dict as .pth and .safetensors, the features_only reference, the loaded nets."""
    save_file = pytest.importorskip("safetensors.torch").save_file
    directory = tmp_path_factory.mktemp("effnet")
    full = _timm_model(EFFNET)
    state = full.state_dict()
    torch.save(state, directory / "full.pth")
    save_file({name: value.contiguous() for name, value in state.items()}, str(directory / "full.safetensors"))
    reference = timm.create_model(EFFNET, pretrained=False, features_only=True).eval()
    result = reference.load_state_dict(state, strict=False)
    assert result.missing_keys == [] and all(k.split(".")[0] in ("conv_head", "bn2", "classifier")
                                             for k in result.unexpected_keys)
    module, variables = feature_nets.load_timm(EFFNET, directory / "full.pth")
    return {"reference": reference, "state": state, "dir": directory, "module": module, "variables": variables,
            "apply": jax.jit(module.apply)}


@pytest.mark.parametrize("size", [(64, 64), (57, 75)])
def test_efficientnet_lite0_matches_timm_features(effnet, size):
    images = _images((2, *size, 3))
    with torch.no_grad():
        expected = [t.numpy().transpose(0, 2, 3, 1) for t in effnet["reference"](_nchw(images))]
    actual = effnet["apply"](effnet["variables"], images)
    assert [a.shape[-1] for a in actual] == [16, 24, 40, 112, 320]
    assert [a.shape[1:3] for a in actual] == [e.shape[1:3] for e in expected]
    errors = [relative_error(a, e) for a, e in zip(actual, expected)]
    assert max(errors) <= TOLERANCE, errors


def test_efficientnet_loads_safetensors_and_features_only_state_dicts(effnet):
    _, from_safetensors = feature_nets.load_timm(EFFNET, effnet["dir"] / "full.safetensors")
    torch.save(effnet["reference"].state_dict(), effnet["dir"] / "features.pth")
    _, from_features = feature_nets.load_timm(EFFNET, effnet["dir"] / "features.pth")
    for variables in (from_safetensors, from_features):
        assert jax.tree_util.tree_structure(variables) == jax.tree_util.tree_structure(effnet["variables"])
        assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(variables),
                                                        jax.tree_util.tree_leaves(effnet["variables"])))


@pytest.mark.parametrize("arch", ["deit_base_distilled_patch16_224", "vit_small_patch16_224.dino"])
def test_vit_blocks_match_timm(arch, tmp_path):
    model = _timm_model(arch, weight_init="skip")  # torch's default initialisation: seconds faster than timm's
    torch.save(model.state_dict(), tmp_path / "vit.pth")
    module, variables = feature_nets.load_timm(arch, tmp_path / "vit.pth")
    images = _images((1, 224, 224, 3), seed=1)
    expected = []
    for block in model.blocks:
        block.register_forward_hook(lambda _, __, output: expected.append(output.numpy()))
    with torch.no_grad():
        normed = model.forward_features(_nchw(images)).numpy()
    actual, state = jax.jit(lambda v, x: module.apply(v, x, mutable=["intermediates"]))(variables, images)
    tokens = 198 if arch.startswith("deit") else 197
    assert len(actual) == 12 and actual[0].shape == (1, tokens, module.embed_dim)
    errors = [relative_error(a, e) for a, e in zip(actual, expected)]
    assert max(errors) <= TOLERANCE, errors
    assert relative_error(state["intermediates"]["normed"][0], normed) <= TOLERANCE
    with pytest.raises(ValueError, match="takes 224x224 images"):
        module.apply(variables, np.zeros((1, 112, 112, 3), np.float32))


def test_tables_cover_every_arch():
    assert feature_nets.module_for("vit_small_patch16_224.dino") is feature_nets.ARCHITECTURES["vit_small_patch16_224"]
    assert feature_nets.NORMALIZATION["vit_small_patch16_224.dino"] == feature_nets.IMAGENET
    assert feature_nets.NORMALIZATION[EFFNET] == feature_nets.NORMALIZATION["vit_base_patch16_224"] == ((0.5,) * 3,) * 2
    assert {name.split(".")[0] for name in feature_nets.NORMALIZATION} == set(feature_nets.ARCHITECTURES)


def test_unknown_arch_is_a_one_line_error(tmp_path):
    with pytest.raises(ValueError, match="unknown feature network 'resnet50'; supported: .*deit_base") as error:
        feature_nets.load_timm("resnet50", tmp_path / "missing.pth")
    assert "\n" not in str(error.value)


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere.safetensors"
    with pytest.raises(weight_files.MissingWeightsError, match="nowhere.safetensors"):
        feature_nets.load_timm(EFFNET, path)


def test_mismatching_state_dict_names_the_tensors(effnet):
    state = dict(effnet["state"])
    state["blocks.0.0.conv_dw.weight"] = torch.zeros(16, 1, 3, 3)
    del state["blocks.6.0.bn3.running_var"]
    state["blocks.9.0.conv_pw.weight"] = torch.zeros(1)
    path = effnet["dir"] / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as error:
        feature_nets.load_timm(EFFNET, path)
    message = str(error.value)
    assert "\n" not in message and "3 tensor(s) differ" in message
    for expected in ("blocks.0.0.conv_dw.weight (16, 1, 3, 3) vs (32, 1, 3, 3)",
                     "blocks.6.0.bn3.running_var missing vs (320,)", "blocks.9.0.conv_pw.weight (1,) vs unexpected"):
        assert expected in message


def test_safetensors_round_trip(tmp_path):
    save_file = pytest.importorskip("safetensors.torch").save_file
    torch.manual_seed(0)
    tensors = {
        "f32": torch.randn(3, 4),
        "f16": torch.randn(5).half(),
        "bf16": torch.randn(2, 3).bfloat16(),
        "i64": torch.arange(-3, 3, dtype=torch.int64).reshape(2, 3),
        "i32": torch.tensor(7, dtype=torch.int32),
        "empty": torch.zeros(0, 4),
    }
    save_file(tensors, str(tmp_path / "t.safetensors"), metadata={"format": "pt"})
    read = weight_files.read_tensors(tmp_path / "t.safetensors")
    assert set(read) == set(tensors)
    for name, tensor in tensors.items():
        expected = tensor.float().numpy() if name == "bf16" else tensor.numpy()
        assert read[name].dtype == expected.dtype and read[name].shape == expected.shape, name
        np.testing.assert_array_equal(read[name], expected)


def _safetensors_bytes(header: object, data: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + data


@pytest.mark.parametrize("content, problem", [
    (b"\x01\x02", "shorter than its 8-byte header length"),
    ((10 ** 6).to_bytes(8, "little") + b"{}", "header length 1000000 is beyond"),
    (b"\x05\x00\x00\x00\x00\x00\x00\x00{bad}", "header is not valid JSON"),
    (_safetensors_bytes([1, 2]), "header is a JSON list"),
    (_safetensors_bytes({"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}, bytes(8)), "unsupported dtype"),
    (_safetensors_bytes({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, bytes(4)), "malformed shape"),
    (_safetensors_bytes({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(8)), "outside the 8"),
    (_safetensors_bytes({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8)), "needs 12"),
])
def test_corrupted_safetensors_are_one_line_errors(tmp_path, content, problem):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=problem) as error:
        weight_files.read_tensors(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_legacy_torch_file_is_a_one_line_error(tmp_path):
    path = pathlib.Path(tmp_path / "old.pth")
    torch.save({"w": torch.zeros(2)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="not a torch zip archive") as error:
        feature_nets.load_timm(EFFNET, path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("arch", ["deit_tiny_distilled_patch16_224"])
def test_classifier_logits_match_timm(arch, tmp_path):
    model = _timm_model(arch, weight_init="skip")
    with torch.no_grad():
        for head in (model.head, model.head_dist):
            head.weight.copy_(torch.randn(head.weight.shape) * 0.1)
            head.bias.copy_(torch.randn(head.bias.shape))
    torch.save(model.state_dict(), tmp_path / "cls.pth")
    logits_fn, weights = feature_nets.load_timm_classifier(arch, tmp_path / "cls.pth")
    images = _images((2, 224, 224, 3), seed=2)
    with torch.no_grad():
        expected = model(_nchw(images)).numpy()  # eval: the mean of the class and distillation heads
    assert relative_error(jax.jit(logits_fn)(weights, images), expected) <= TOLERANCE
    del model.head  # a state dict without its classifier is refused in one line
    torch.save({k: v for k, v in torch.load(tmp_path / "cls.pth").items() if not k.startswith("head.")},
               tmp_path / "headless.pth")
    with pytest.raises(ValueError, match=r"no classifier head\.weight"):
        feature_nets.load_timm_classifier(arch, tmp_path / "headless.pth")
    with pytest.raises(ValueError, match="not a ViT/DeiT classifier"):
        feature_nets.load_timm_classifier(EFFNET, tmp_path / "cls.pth")


def test_projection_specs():
    effnet = feature_nets.projection_spec(EFFNET)
    assert effnet.kind == "cnn" and effnet.hooks == (1, 2, 3, 4) and effnet.normalization == feature_nets.INCEPTION
    deit = feature_nets.projection_spec("deit_base_distilled_patch16_224")
    assert (deit.kind, deit.hooks, deit.features, deit.start_index) == ("vit", (2, 5, 8, 11), (96, 192, 384, 768), 2)
    assert feature_nets.projection_spec("vit_small_patch16_224.dino").normalization == feature_nets.IMAGENET
    assert set(feature_nets.PROJECTION_BACKBONES) >= {EFFNET, "deit_base_distilled_patch16_224"}
