"""StyleGAN-T snapshots read safely: the generator (a plain torch module pickled by value, no constructor
kwargs) loads with its arguments recovered from its modules and reproduces the official images; the CLIP
text tower inside it embeds prompts for `generate`; the projected discriminator is read past.

The snapshots are written like the official training loop's dill dump (stylegan_t_pickle_writer), around
the official state dict of tests/data/sgt_tiny_golden.npz plus a random CLIP text tower."""
import json
import os
import pickle

import jax.numpy as jnp
import numpy as np
import pytest

import official_pickle_writer as w
import stylegan_t_pickle_writer as tw
from stylegan_jax import generate
from stylegan_jax.convert import load_official_pickle
from stylegan_jax.convert.official_pickle import read_official_pickle
from stylegan_jax.convert.stylegan_t_kwargs import channel_range
from stylegan_jax.networks import stylegan_t
from stylegan_jax.perceptual import clip_text
from stylegan_jax.perceptual.clip_tokenizer import tokenize
from stylegan_jax.sampling import prompts
from stylegan_jax.training.loop import _resume_weights
from test_stylegan_t import GOLDEN, rel_err

pytestmark = pytest.mark.skipif(not GOLDEN.exists(), reason=f"{GOLDEN} is missing")
PSI = 0.6  # the golden's truncation
# The golden's kwargs completed with every synthesis argument the reader recovers (official defaults).
RECOVERED_SYNTHESIS = dict(channel_base=256, channel_max=32, num_fp16_res=4, base_mult=3, num_res_blocks=2,
                           architecture="skip", resample_filter=(0.125, 0.375, 0.375, 0.125), conv_clamp=256,
                           fp16_channels_last=False, fused_modconv_default="inference_only", kernel_size=3,
                           use_noise=True, activation="lrelu", gn_groups=8)


@pytest.fixture(scope="module")
def golden():
    data = np.load(GOLDEN)
    kwargs = json.loads(str(data["meta/init_kwargs"]))
    state_dict = {k[3:]: data[k] for k in data.files if k.startswith("sd/")}
    state_dict.update(tw.clip_text_state_dict(width=data["c"].shape[1]))
    return kwargs, state_dict, data


@pytest.fixture(scope="module")
def snapshot_path(golden, tmp_path_factory):
    kwargs, state_dict, _ = golden
    return tw.dump(tmp_path_factory.mktemp("sgt") / "network-snapshot-000100.pkl", tw.generator(kwargs, state_dict))


def test_generator_kwargs_and_text_tower_are_recovered_and_d_is_read_past(golden, snapshot_path):
    kwargs, state_dict, _ = golden
    snapshot = read_official_pickle(snapshot_path)
    assert snapshot["unreadable"] == {"D": tw.PROJECTED_D} and "D" not in snapshot
    assert snapshot["training_set_kwargs"]["resolution"] == 16
    for key in ("G", "G_ema"):
        net = snapshot[key]
        assert net.class_name == tw.GENERATOR
        assert net.init_kwargs == {**kwargs, "train_mode": "all", "synthesis_kwargs": RECOVERED_SYNTHESIS}
        assert net.text_tower == {"heads": 2, "quick_gelu": True}
        assert net.state_dict.keys() == state_dict.keys()
        for name, value in state_dict.items():
            np.testing.assert_array_equal(net.state_dict[name], value, name)


def test_loaded_generator_reproduces_the_official_images(golden, snapshot_path):
    _, _, data = golden
    nets = load_official_pickle(snapshot_path)
    assert sorted(nets) == ["G", "G_ema"]
    G, variables = nets["G_ema"]
    assert isinstance(G, stylegan_t.Generator) and G.c_dim == data["c"].shape[1]
    img = G.apply(variables, jnp.asarray(data["z"]), jnp.asarray(data["c"]), truncation_psi=PSI)
    error = rel_err(np.transpose(np.asarray(img), (0, 3, 1, 2)), data["img_trunc"])
    print("relative error of the truncated images:", error)
    assert error <= 1e-5


@pytest.mark.parametrize("heads, quick_gelu", [(2, True), (4, False)])
def test_prompts_are_embedded_by_the_snapshot_text_tower(golden, tmp_path, heads, quick_gelu):
    """The heads and the activation come from the pickled modules; the sizes from the weights."""
    kwargs, state_dict, _ = golden
    path = tw.dump(tmp_path / "snapshot.pkl", tw.generator(kwargs, state_dict, clip_heads=heads, quick_gelu=quick_gelu))
    encoder = prompts.prompt_encoder(path)
    width = state_dict[tw.CLIP_PREFIX + "ln_final.weight"].shape[0]
    expected_config = clip_text.CLIPTextConfig(width=width, heads=heads, layers=1, embed_dim=width, quick_gelu=quick_gelu)
    assert encoder.tower.config == expected_config
    texts = ["a photo of a face", "an old man"]
    tower, params = clip_text.clip_text_params(stylegan_t.split_clip_state_dict(state_dict)[1], expected_config)
    pooled = np.asarray(tower.apply({"params": params}, jnp.asarray(tokenize(texts, 77))))
    np.testing.assert_allclose(encoder(texts), pooled / np.linalg.norm(pooled, axis=-1, keepdims=True), rtol=1e-5,
                               atol=1e-6)


def test_generate_samples_prompts_from_the_snapshot(snapshot_path, tmp_path, capsys):
    assert generate.main(["--network", snapshot_path, "--seeds", "0-1", "--prompt", "a face", "--prompt", "a dog",
                          "--outdir", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.glob("*.png"))
    assert written == ["prompt00-seed0000.png", "prompt00-seed0001.png", "prompt01-seed0000.png",
                       "prompt01-seed0001.png"], capsys.readouterr()


def test_unconditional_generator_has_no_text_tower(golden, tmp_path):
    kwargs, state_dict, _ = golden
    path = tw.dump(tmp_path / "uncond.pkl", tw.generator(
        {**kwargs, "conditional": False}, {k: v for k, v in state_dict.items() if not k.startswith("mapping.clip.")}))
    net = read_official_pickle(path)["G_ema"]
    assert net.init_kwargs["conditional"] is False and net.text_tower is None
    with pytest.raises(ValueError, match="holds no StyleGAN-T generator with a CLIP text tower: give --clip FILE"):
        prompts.prompt_encoder(path)


def test_non_default_mapping_and_fp16_attributes_are_recovered(golden, tmp_path):
    kwargs, state_dict, _ = golden
    attributes = {"mapping": {"x_avg_beta": 0.99}, "synthesis": {"num_fp16_res": 1},
                  "synthesis.b16": {"use_fp16": True, "channels_last": True}}
    net = read_official_pickle(tw.dump(tmp_path / "s.pkl", tw.generator(kwargs, state_dict, attributes=attributes)))["G"]
    assert net.init_kwargs["mapping_kwargs"] == {"x_avg_beta": 0.99}
    assert net.init_kwargs["synthesis_kwargs"]["num_fp16_res"] == 1
    assert net.init_kwargs["synthesis_kwargs"]["fp16_channels_last"] is True


@pytest.mark.parametrize("path, attributes, message", [
    ("", {"z_dim": "8"}, r"G: networks.generator.Generator.z_dim: expected int, got str"),
    ("", {"conditional": 1}, r"G: networks.generator.Generator.conditional: expected bool, got int"),
    ("synthesis", {"block_resolutions": None}, "G: the StyleGAN-T synthesis network has no list of block resolutions"),
    ("synthesis", {"block_resolutions": [8, 16, 32]}, r"G: the StyleGAN-T generator has no module 'b32'"),
    ("synthesis.b8", {"out_channels": 5}, r"G: no channel_base gives the block widths \{8: 5, 16: 16\}"),
])
def test_malformed_generator_attributes_are_named(golden, tmp_path, path, attributes, message):
    kwargs, state_dict, _ = golden
    snapshot = tw.dump(tmp_path / "bad.pkl", tw.generator(kwargs, state_dict, attributes={path: attributes}))
    with pytest.raises(ValueError, match=message):
        read_official_pickle(snapshot)


def test_foreign_globals_inside_the_generator_are_refused(golden, tmp_path):
    kwargs, state_dict, _ = golden
    marker = tmp_path / "pwned"
    G = tw.generator(kwargs, state_dict, attributes={"mapping.clip": {"hook": w.Call(os.system, f"touch {marker}")}})
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load global \w+\.system"):
        read_official_pickle(tw.dump(tmp_path / "bad.pkl", G))
    assert not marker.exists()


def test_resume_from_a_stylegan_t_snapshot_names_the_unreadable_d(snapshot_path):
    with pytest.raises(ValueError, match=r"config.resume: .*holds no readable D \(the projected D of a StyleGAN-XL "
                                         r"or StyleGAN-T snapshot"):
        _resume_weights(None, snapshot_path)


@pytest.mark.parametrize("channel_base, channel_max, resolution", [
    (32768, 512, 1024), (65536, 2048, 1024), (32768, 512, 64), (1024, 64, 16)])  # lite, full, custom
def test_channel_range_recovers_the_official_width_settings(channel_base, channel_max, resolution):
    widths = {res: min(channel_base // res, channel_max) for res in stylegan_t.block_resolutions(resolution)}
    assert channel_range(widths) == (channel_base, channel_max)


def test_channel_range_takes_the_smallest_base_when_no_power_of_two_fits():
    assert channel_range({8: 32, 16: 24}) == (384, 32)  # 384 // 16 == 24; 512 // 16 would be 32
