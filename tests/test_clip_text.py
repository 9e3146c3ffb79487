"""CLIP text tower and BPE tokenizer against open_clip: small towers at random weights, the real vocabulary."""
import builtins
import gzip
import sys

import torchvision_stub

torchvision_stub.install()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import relative_error  # noqa: E402

open_clip = pytest.importorskip("open_clip")
torch = pytest.importorskip("torch")
pytest.importorskip("regex")

from stylegan_jax.perceptual import clip_text, clip_tokenizer  # noqa: E402

CAPTIONS = [
    "a photo of a cat",
    "A Photo Of A DOG, sitting on the grass!!!",
    "",
    "   leading and trailing   whitespace\t\nwith\ttabs   ",
    "3.14159 is pi; 2024-01-01 at 12:30pm costs $1,000.50",
    "caf&amp;eacute; &lt;b&gt;bold&lt;/b&gt; &quot;quoted&quot; &#39;apostrophe&#39;",
    "naïve Ünïcödé façade — “smart quotes” … and ß",
    "日本語のテキスト 中文 한국어 русский текст العربية",
    "emoji 😀👍🏽 and flags 🇫🇷",
    "it's they're we've I'm you'll he'd don't",
    "snake_case and CamelCase and kebab-case and e-mail@example.com",
    "mojibake: Ã©tÃ© â€œquotedâ€\x9d",
    "<start_of_text> special tokens inside <end_of_text> text",
    "supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis",
    " ".join(f"word{i}" for i in range(120)),  # far beyond 77 tokens
    "x" * 400,
]
SMALL_TEXT = dict(width=64, heads=4, layers=2, embed_dim=32)


@pytest.fixture(scope="module")
def tokenizer():
    return clip_tokenizer.CLIPTokenizer()


@pytest.fixture(scope="module")
def reference_tokenizer():
    return open_clip.get_tokenizer("ViT-L-14")


def test_vocabulary_equals_open_clips(tokenizer, reference_tokenizer):
    assert tokenizer.vocab_size == 49408
    assert (tokenizer.start_id, tokenizer.end_id) == (49406, 49407)
    assert tokenizer.ids == reference_tokenizer.encoder


def test_tokenize_equals_open_clip(tokenizer, reference_tokenizer):
    ours = tokenizer.tokenize(CAPTIONS)
    assert ours.dtype == np.int32 and ours.shape == (len(CAPTIONS), 77)
    np.testing.assert_array_equal(ours, reference_tokenizer(CAPTIONS).numpy())
    np.testing.assert_array_equal(tokenizer.tokenize(CAPTIONS, context_length=12),
                                  open_clip.tokenize(CAPTIONS, context_length=12).numpy())
    np.testing.assert_array_equal(clip_tokenizer.tokenize(CAPTIONS[0]), ours[:1])


def test_overlong_text_is_cut_keeping_the_end_token(tokenizer):
    row = tokenizer.tokenize(CAPTIONS[-2])[0]
    assert row[0] == tokenizer.start_id and row[-1] == tokenizer.end_id
    assert row[1:-1].tolist() == tokenizer.encode(CAPTIONS[-2])[:75]
    assert tokenizer.tokenize("")[0, :3].tolist() == [tokenizer.start_id, tokenizer.end_id, 0]


def test_decode_round_trips(tokenizer, reference_tokenizer):
    spaced = ["a photo of a cat", "hello , world !!", "naïve ünïcödé 日本語のテキスト 😀👍", "it 's 3 . 1 4", ""]
    for text in spaced:
        assert tokenizer.decode(tokenizer.encode(text)) == clip_tokenizer.clean_text(text)
    for text in CAPTIONS:
        ids = tokenizer.encode(text)
        decoded = tokenizer.decode(ids)
        assert decoded == reference_tokenizer.decode(ids).strip()
        assert decoded.replace(" ", "") == clip_tokenizer.clean_text(text).replace(" ", "")
        assert tokenizer.encode(decoded) == ids


def test_default_vocabulary_is_found_without_importing_open_clip(monkeypatch):
    real_import = builtins.__import__

    def guarded_import(name, *args, **kwargs):
        assert not name.startswith("open_clip"), "the tokenizer imported open_clip"
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", guarded_import)
    tokenizer = clip_tokenizer.CLIPTokenizer()
    assert tokenizer.encode("a cat") == [320, 2368]


def test_vocabulary_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        clip_tokenizer.CLIPTokenizer(tmp_path / "missing.txt.gz")
    (tmp_path / "plain.txt.gz").write_text("not gzipped")
    with pytest.raises(ValueError, match="not a gzipped CLIP merge list"):
        clip_tokenizer.CLIPTokenizer(tmp_path / "plain.txt.gz")
    with gzip.open(tmp_path / "short.txt.gz", "wt") as f:
        f.write("#version: 0.2\na b\n")
    with pytest.raises(ValueError, match="not a CLIP merge list"):
        clip_tokenizer.CLIPTokenizer(tmp_path / "short.txt.gz")


def test_missing_regex_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "regex", None)
    with pytest.raises(ImportError, match=r"pip install 'stylegan_jax\[text\]'") as error:
        clip_tokenizer.CLIPTokenizer()
    assert "\n" not in str(error.value)


def _small_clip(quick_gelu: bool):
    torch.manual_seed(1 + quick_gelu)
    model = open_clip.model.CLIP(
        embed_dim=SMALL_TEXT["embed_dim"],
        vision_cfg=open_clip.model.CLIPVisionCfg(layers=1, width=32, head_width=16, patch_size=16, image_size=32),
        text_cfg=open_clip.model.CLIPTextCfg(context_length=77, vocab_size=49408, width=SMALL_TEXT["width"],
                                             heads=SMALL_TEXT["heads"], layers=SMALL_TEXT["layers"]),
        quick_gelu=quick_gelu).eval()
    with torch.no_grad():  # away from the initialisation's zero biases and unit LayerNorms
        for name, p in model.named_parameters():
            p.normal_(0.0, 0.5 if p.ndim == 1 or "embedding" in name else 0.15)
    return model


def _reference(model, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """open_clip's pooled embedding, and its per-token features after ln_final (as encode_text computes them)."""
    with torch.no_grad():
        text = torch.from_numpy(tokens).long()
        pooled = model.encode_text(text).numpy()
        x = model.token_embedding(text) + model.positional_embedding
        features = model.ln_final(model.transformer(x, attn_mask=model.attn_mask)).numpy()
    return pooled, features


@pytest.fixture(scope="module")
def tokens(tokenizer):
    return tokenizer.tokenize(CAPTIONS[:6] + CAPTIONS[-2:])


@pytest.mark.parametrize("quick_gelu", [True, False], ids=["quick_gelu", "gelu"])
def test_text_tower_equals_open_clip(quick_gelu, tokens, tmp_path):
    model = _small_clip(quick_gelu)
    # A plain dict: the weight reader refuses the _metadata attribute of state_dict()'s OrderedDict.
    torch.save(dict(model.state_dict()), tmp_path / "clip.pt")
    config = clip_text.CLIPTextConfig(**SMALL_TEXT, quick_gelu=quick_gelu)
    module, variables = clip_text.load_clip_text(tmp_path / "clip.pt", config)
    pooled, features = jax.jit(lambda v, t: module.apply(v, t, return_tokens=True))(variables, tokens)
    expected_pooled, expected_features = _reference(model, tokens)
    errors = relative_error(pooled, expected_pooled), relative_error(features, expected_features)
    print(f"quick_gelu={quick_gelu}: relative error pooled {errors[0]:.2e}, tokens {errors[1]:.2e}")
    assert pooled.shape == (len(tokens), 32) and features.shape == (len(tokens), 77, 64)
    assert max(errors) <= 1e-4
    np.testing.assert_allclose(module.apply(variables, tokens), pooled, rtol=1e-4, atol=1e-5)
    if quick_gelu:  # the other activation is measurably different: the field is honoured
        other = clip_text.CLIPTextTower(clip_text.CLIPTextConfig(**SMALL_TEXT, quick_gelu=False))
        assert relative_error(other.apply(variables, tokens), expected_pooled) > 1e-3


def test_torchscript_archive_and_half_precision_npz(tokens, tmp_path):
    model = _small_clip(True)
    traced = torch.jit.trace(model, (torch.zeros(1, 3, 32, 32), torch.zeros(1, 77, dtype=torch.long)),
                             check_trace=False)
    traced.save(tmp_path / "openai.pt")  # OpenAI's checkpoints are TorchScript archives
    config = clip_text.CLIPTextConfig(**SMALL_TEXT)
    module, variables = clip_text.load_clip_text(tmp_path / "openai.pt", config)
    expected = _reference(model, tokens)[0]
    assert relative_error(module.apply(variables, tokens), expected) <= 1e-4

    half = {name: value.half().numpy() for name, value in model.state_dict().items()}
    np.savez(tmp_path / "half.npz", **{f"state_dict.module.{k}": v for k, v in half.items()})
    _, half_variables = clip_text.load_clip_text(tmp_path / "half.npz", config)
    embedding = half_variables["params"]["token_embedding"]["embedding"]
    assert embedding.dtype == np.float32
    np.testing.assert_array_equal(embedding, half["token_embedding.weight"].astype(np.float32))


@pytest.mark.parametrize("name", ["ViT-L-14", "ViT-B-32"])
def test_preset_shapes_equal_open_clips(name):
    with torch.device("meta"):  # shapes without initialising ~400M parameters
        reference = open_clip.create_model(name, pretrained=None, device="meta").state_dict()
    text_cfg = open_clip.get_model_config(name)["text_cfg"]
    preset = clip_text.PRESETS[name]
    assert preset.heads == text_cfg["heads"] and preset.width == text_cfg["width"]
    tensors = {k: np.broadcast_to(np.float32(0), tuple(v.shape)) for k, v in reference.items()}
    module, params = clip_text.clip_text_params(tensors, name)  # the loader's layout, from real names
    shapes = jax.eval_shape(module.init, jax.random.key(0), jax.ShapeDtypeStruct((2, 77), np.int32))
    ours = jax.tree_util.tree_map(lambda s: s.shape, shapes["params"])
    loaded = jax.tree_util.tree_map(np.shape, params)
    assert ours == loaded
    text_names = [k for k in reference if not k.startswith("visual.") and k not in ("logit_scale", "attn_mask")]
    assert len(jax.tree_util.tree_leaves(params)) == len(text_names)  # every text tensor is used


def _write_npz(path, tensors):
    np.savez(path, **tensors)
    return path


@pytest.fixture(scope="module")
def small_tensors():
    return {k: v.numpy() for k, v in _small_clip(False).state_dict().items()}


@pytest.mark.parametrize("change, message", [
    (lambda t: t.pop("ln_final.bias"), "missing tensor ln_final.bias"),
    (lambda t: t.__setitem__("transformer.resblocks.1.mlp.c_fc.weight", np.zeros((64, 64), np.float32)),
     r"transformer.resblocks.1.mlp.c_fc.weight has shape \(64, 64\), expected \(256, 64\)"),
    (lambda t: t.__setitem__("text_projection", np.zeros((64, 16), np.float32)), "has embed_dim 16"),
    (lambda t: t.__setitem__("transformer.resblocks.0.ls_1.gamma", np.ones(64, np.float32)),
     "unsupported tensor transformer.resblocks.0.ls_1.gamma"),
    (lambda t: t.pop("token_embedding.weight"), "not a CLIP state dict"),
])
def test_bad_state_dicts_raise_one_line(small_tensors, tmp_path, change, message):
    tensors = dict(small_tensors)
    change(tensors)
    path = _write_npz(tmp_path / "bad.npz", tensors)
    with pytest.raises(ValueError, match=message) as error:
        clip_text.load_clip_text(path, clip_text.CLIPTextConfig(**SMALL_TEXT, quick_gelu=False))
    assert "\n" not in str(error.value)


def test_preset_mismatch_and_missing_file(small_tensors, tmp_path):
    path = _write_npz(tmp_path / "small.npz", small_tensors)
    with pytest.raises(ValueError, match="width 64, the CLIP ViT-L-14 text tower expects 768"):
        clip_text.load_clip_text(path, "ViT-L-14")
    with pytest.raises(ValueError, match="unknown CLIP text preset"):
        clip_text.load_clip_text(path, "ViT-H-99")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        clip_text.load_clip_text(tmp_path / "absent.pt", "ViT-L-14")
