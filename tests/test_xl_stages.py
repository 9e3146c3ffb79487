"""StyleGAN-XL's progressive growing through the training loop: a stem run, a superresolution stage grown from
it that trains only its head, config errors in one line, and the official stage configs."""
import pathlib

import jax
import numpy as np
import pytest

from stylegan_jax import checkpoint
from stylegan_jax.configs_common import sibling_config
from stylegan_jax.convert.state_dict import build_network
from stylegan_jax.networks import stylegan_xl
from stylegan_jax.training import config as config_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = {"total_kimg": 0.008, "batch_size": 8, "snapshot_kimg": 0.008, "tick_kimg": 0.008, "grid_size": (2, 1)}


def _config(variant: str, **overrides):
    c = sibling_config(str(ROOT / "configs" / "x.py"), "xl_digits.py", variant)
    c.projected.input_size = 75
    for key, value in {**TINY, **overrides}.items():
        section, _, name = key.rpartition(".")
        (c[section] if section else c)[name] = value
    return c


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    """One iteration of the digits stem at 16x16, then one of the 32x32 stage grown from it: their workdirs."""
    from stylegan_jax.training.loop import train_and_evaluate

    root = tmp_path_factory.mktemp("xl")
    train_and_evaluate(_config("stem"), str(root / "s16"))
    train_and_evaluate(_config("superres", **{"xl.stem": str(root / "s16")}), str(root / "s32"))
    return root / "s16", root / "s32"


def _flat(tree) -> dict:
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def test_superres_stage_grows_from_the_stem_and_trains_its_head_only(stages):
    stem_dir, stage_dir = stages
    stem, stem_ema = checkpoint.load_network(str(stem_dir), which="G_ema")
    stage, g = checkpoint.load_network(str(stage_dir), which="G")
    _, g_ema = checkpoint.load_network(str(stage_dir), which="G_ema")
    assert isinstance(stage, stylegan_xl.SuperresGenerator)
    assert (stage.img_resolution, stage.head_layers, stage.up_factor, stage.path_stem) == (32, 4, 2, str(stem_dir))
    assert list(stage_dir.glob("fakes_kimg*.png"))
    kept, head = stage.layer_names()
    trains = stylegan_xl.head_only(stage, train_input=True)
    stem_params, params, ema_params = _flat(stem_ema["params"]), _flat(g["params"]), _flat(g_ema["params"])
    frozen = [k for k in params if not trains(tuple(k.strip("[]'").split("']['")))]
    assert len(frozen) > 0 and any("mapping" in k for k in frozen)
    for key in frozen:  # the mapping and the stem's kept layers: the stem's G_ema, untouched by the step
        np.testing.assert_array_equal(params[key], stem_params[key], err_msg=key)
        np.testing.assert_array_equal(ema_params[key], stem_params[key], err_msg=key)
    # The head starts as the loop grows it (official SuperresGenerator: fresh head layers), then trains.
    key = jax.random.fold_in(jax.random.PRNGKey(0), 2)
    _, grown = stylegan_xl.grow_from_stem(stem, stem_ema, 4, 2, key)
    start = _flat(grown["params"])
    trained = [k for k in params if k not in frozen]
    assert any(f"'{head[-1]}'" in k for k in trained) and any("'input'" in k for k in trained)
    for key_ in trained:
        assert not np.array_equal(params[key_], start[key_]), f"{key_} did not train"
    assert not any(f"'{name}'" in k for name in head for k in stem_params)  # the head is new
    assert any(f"'{kept[0]}'" in k for k in frozen)


def test_xl_config_errors_are_one_line(tmp_path):
    cases = [({"xl.stem": str(tmp_path / "none")}, "config.xl.stem: .* is not a training run with a checkpoint"),
             ({"model.arch": "stylegan2", "xl.stem": "runs/x"}, "config.xl.stem needs model.arch 'stylegan_xl'"),
             ({"projected.backbones": ()}, "config.projected.backbones must name the frozen networks"),
             ({"xl.up_factor": 3}, "config.xl.up_factor must be one of"),
             ({"xl.head_layers": 2}, "config.xl.head_layers must be >= 3")]
    for overrides, message in cases:
        config = _config("superres" if "xl.stem" in overrides else "stem", **overrides)
        with pytest.raises(ValueError, match=message) as info:
            config_lib.validate_config(config, 1)
        assert "\n" not in str(info.value)


def test_stage_resolution_must_fit_the_stem(stages):
    stem_dir, _ = stages
    config = _config("superres", **{"xl.stem": str(stem_dir), "xl.up_factor": 4})
    with pytest.raises(ValueError, match="config.xl.stem .* does not fit this stage's data: img_resolution 32 is not "
                                         "the stem's 16 times up_factor 4"):
        config_lib.validate_config(config, 1)


@pytest.mark.parametrize("name, c_dim", [("xl_imagenet.py", 1000), ("xl_ffhq.py", 0)])
def test_official_stem_configs_build_the_xl_generator(name, c_dim):
    config = sibling_config(str(ROOT / "configs" / "x.py"), name, "16")
    (g_class, g_kwargs), (d_class, d_kwargs) = config_lib.network_specs(config, c_dim, 3)
    G = build_network(g_class, g_kwargs)
    assert type(G) is stylegan_xl.Generator and (G.z_dim, G.w_dim, G.img_resolution, G.c_dim) == (64, 512, 16, c_dim)
    assert G.num_layers == (14 if name == "xl_imagenet.py" else 7)
    assert d_kwargs["backbones"] == ("deit_base_distilled_patch16_224", "tf_efficientnet_lite0")
    assert d_kwargs["backbone_kwargs"]["cond"] == int(bool(c_dim))
    stage = sibling_config(str(ROOT / "configs" / "x.py"), name, "64")
    assert stage.xl.stem.endswith("32") and stage.loss.pl_weight == 0 and stage.dataset.resolution == 64
