"""CLIP ViT image tower against open_clip's encode_image: a small tower at random weights, and the presets' shapes."""
import torchvision_stub

torchvision_stub.install()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import relative_error  # noqa: E402

open_clip = pytest.importorskip("open_clip")
torch = pytest.importorskip("torch")

from stylegan_jax.perceptual import clip_image  # noqa: E402

SMALL_VISION = dict(layers=2, width=64, patch_size=8, image_size=32)


def _small_clip(quick_gelu: bool):
    torch.manual_seed(3 + quick_gelu)
    model = open_clip.model.CLIP(
        embed_dim=32,
        vision_cfg=open_clip.model.CLIPVisionCfg(**SMALL_VISION),
        text_cfg=open_clip.model.CLIPTextCfg(context_length=16, vocab_size=100, width=32, heads=2, layers=1),
        quick_gelu=quick_gelu).eval()
    with torch.no_grad():  # away from the initialisation's zero biases and unit LayerNorms
        for name, p in model.named_parameters():
            p.normal_(0.0, 0.5 if p.ndim == 1 or "embedding" in name else 0.15)
    return model


def _config(quick_gelu: bool) -> clip_image.CLIPImageConfig:
    # open_clip's default head width is 64: width 64 is one head.
    return clip_image.CLIPImageConfig(width=64, heads=1, layers=2, patch_size=8, embed_dim=32, image_size=32,
                                      quick_gelu=quick_gelu)


@pytest.mark.parametrize("quick_gelu", [True, False], ids=["quick_gelu", "gelu"])
def test_image_tower_equals_open_clip(quick_gelu, tmp_path):
    model = _small_clip(quick_gelu)
    torch.save(dict(model.state_dict()), tmp_path / "clip.pt")  # text tower's tensors included: ignored
    module, variables = clip_image.load_clip_image(tmp_path / "clip.pt", _config(quick_gelu))
    images = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype(np.float32)
    ours = jax.jit(module.apply)(variables, images)
    with torch.no_grad():
        expected = model.encode_image(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
    error = relative_error(ours, expected)
    print(f"quick_gelu={quick_gelu}: relative error {error:.2e}")
    assert ours.shape == (3, 32) and error <= 1e-4
    if quick_gelu:  # the other activation is measurably different: the field is honoured
        other = clip_image.CLIPImageTower(_config(False))
        assert relative_error(other.apply(variables, images), expected) > 1e-3


def test_wrapped_npz_and_config_mismatch(tmp_path):
    model = _small_clip(True)
    tensors = {f"module.{k}": v.numpy() for k, v in model.state_dict().items()}
    np.savez(tmp_path / "clip.npz", **tensors)
    _, variables = clip_image.load_clip_image(tmp_path / "clip.npz", _config(True))
    np.testing.assert_array_equal(variables["params"]["proj"], tensors["module.visual.proj"])
    wrong = clip_image.CLIPImageConfig(width=64, heads=1, layers=3, patch_size=8, embed_dim=32, image_size=32)
    with pytest.raises(ValueError, match="layers 2"):
        clip_image.load_clip_image(tmp_path / "clip.npz", wrong)
    with pytest.raises(ValueError, match="not a CLIP ViT state dict"):
        clip_image.clip_image_params({"conv1.weight": np.zeros((64, 3, 8, 8))}, _config(True))


@pytest.mark.parametrize("name", ["ViT-L-14", "ViT-B-32"])
def test_preset_shapes_equal_open_clips(name):
    with torch.device("meta"):  # shapes without initialising the parameters
        reference = open_clip.create_model(name, pretrained=None, device="meta").state_dict()
    vision_cfg = open_clip.get_model_config(name)["vision_cfg"]
    preset = clip_image.PRESETS[name]
    assert preset.heads == vision_cfg["width"] // vision_cfg.get("head_width", 64)
    tensors = {k: np.broadcast_to(np.float32(0), tuple(v.shape)) for k, v in reference.items()}
    module, params = clip_image.clip_image_params(tensors, name.replace("-", "/", 1).replace("ViT/", "ViT-"))
    shapes = jax.eval_shape(module.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 224, 224, 3), np.float32))
    assert jax.tree_util.tree_map(lambda s: s.shape, shapes["params"]) == jax.tree_util.tree_map(np.shape, params)
    visual = [k for k in reference if k.startswith("visual.")]
    assert len(jax.tree_util.tree_leaves(params)) == len(visual)  # every image tensor is used
