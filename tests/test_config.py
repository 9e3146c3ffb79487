"""Config files and start-up validation of training configs."""
import importlib.util
import pathlib
import re

import pytest
from tiny_config import override

from stylegan_jax.training.config import default_config, network_specs, official_config, validate_config

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"


def _load(name, *args):
    spec = importlib.util.spec_from_file_location(name, CONFIGS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(*args)


@pytest.mark.parametrize("name, arch", [("quickstart", "stylegan2"), ("utkface", "stylegan2"), ("ffhq", "stylegan2"),
                                        ("ffhq_sg3t", "stylegan3-t"), ("ffhq_sg3r", "stylegan3-r")])
def test_config_files_validate_and_give_official_networks(name, arch):
    config = _load(name)
    assert config.model.arch == arch
    config.dataset.source, config.dataset.path = "digits", ""  # the data itself is not here
    validate_config(config, num_devices=8)
    (g_class, g_kwargs), (d_class, d_kwargs) = network_specs(config, c_dim=0, img_channels=3)
    assert g_class.endswith("networks_stylegan2.Generator" if arch == "stylegan2" else "networks_stylegan3.Generator")
    assert d_class == "training.networks_stylegan2.Discriminator"
    assert g_kwargs["img_resolution"] == d_kwargs["img_resolution"] == config.dataset.resolution
    if arch == "stylegan3-r":
        assert g_kwargs["conv_kernel"] == 1 and g_kwargs["use_radial_filters"]
        assert config.loss.blur_init_sigma == 10 and config.loss.blur_fade_kimg == 200
        # train.py doubles the generator's widths only.
        assert (g_kwargs["channel_base"], g_kwargs["channel_max"]) == (65536, 1024)
        assert (d_kwargs["channel_base"], d_kwargs["channel_max"]) == (32768, 512)
    else:
        assert g_kwargs["channel_base"] == d_kwargs["channel_base"] == config.model.channel_base


def test_ada_study_configs_differ_only_in_augmentation_the_wide_variant_in_d_and_auto_in_gamma():
    ada, none, wide = _load("utkface32_ada_study", "ada"), _load("utkface32_ada_study", "none"), \
        _load("utkface32_ada_study", "none,wide")
    auto = _load("utkface32_ada_study", "ada,auto")
    assert (ada.augment.mode, none.augment.mode, wide.augment.mode, auto.augment.mode) == ("ada", "none", "none", "ada")
    assert ada.loss.r1_gamma == 0.1 and auto.loss.r1_gamma == pytest.approx(0.0064)  # --cfg=auto: 0.0002*32**2/32
    assert (auto.model.channel_base, auto.model.d_channel_base, auto.total_kimg) == (1024, 0, 200.0)
    for config in (ada, none, wide, auto):
        config.dataset.source, config.dataset.path = "digits", ""
        validate_config(config, num_devices=8)
    (_, g_narrow), (_, d_narrow) = network_specs(none, c_dim=0, img_channels=3)
    (_, g_wide), (_, d_wide) = network_specs(wide, c_dim=0, img_channels=3)
    assert g_narrow == g_wide and (d_narrow["channel_base"], d_narrow["channel_max"]) == (1024, 32)
    assert (d_wide["channel_base"], d_wide["channel_max"]) == (2048, 128)
    with pytest.raises(ValueError, match="unknown variant 'narrow'"):
        _load("utkface32_ada_study", "ada,narrow")


def test_official_presets_follow_train_py():
    sg2, sg3r = official_config("stylegan2", 32, 10.0), official_config("stylegan3-r", 64, 32.8)
    assert (sg2.model.map_layers, sg2.loss.pl_weight, sg2.loss.style_mixing_prob, sg2.optimizer.g_lr) == (8, 2.0, 0.9, 0.002)
    assert (sg3r.model.map_layers, sg3r.loss.pl_weight, sg3r.optimizer.g_lr) == (2, 0.0, 0.0025)
    assert (sg3r.model.channel_base, sg3r.model.channel_max, sg3r.ema_kimg) == (65536, 1024, 20.0)
    assert sg3r.loss.blur_fade_kimg == 400
    # train.py: G_reg_interval unset for StyleGAN3 (one Gboth phase, plain Adam), 4 for StyleGAN2; ADA on.
    assert (sg2.loss.g_reg_interval, sg3r.loss.g_reg_interval, sg3r.loss.d_reg_interval) == (4, 0, 16)
    assert sg2.augment.mode == sg3r.augment.mode == "ada" and sg2.augment.pipe == "bgc"
    with pytest.raises(ValueError, match="arch must be one of"):
        official_config("stylegan4", 32, 1.0)


def _digits_config(**changes):
    config = default_config()
    config.dataset.source = "digits"
    return override(config, changes)


@pytest.mark.parametrize("changes, message", [
    (dict(batch_size=12), "config.batch_size must be a positive multiple of the 8 devices"),
    (dict(**{"dataset.resolution": 48}), "dataset.resolution"),
    (dict(**{"model.arch": "stylegan4"}), "config.model.arch"),
    (dict(**{"model.compute_dtype": "float16"}), "config.model.compute_dtype"),
    (dict(**{"dataset.source": "folder", "dataset.path": "/no/such/folder"}), "dataset.path"),
    (dict(**{"loss.d_reg_interval": -1}), "config.loss.d_reg_interval"),
    (dict(**{"augment.pipe": "bgcx"}), "config.augment.pipe must be one of"),
    (dict(**{"augment.mode": "adaptive"}), "config.augment.mode must be one of"),
    (dict(**{"augment.p": 1.5}), "config.augment.p must be in [0, 1], got 1.5"),
    (dict(**{"augment.target": 1.0}), "config.augment.target must be in (0, 1), got 1.0"),
    (dict(**{"augment.interval": 0}), "config.augment.interval must be >= 1"),
    (dict(**{"augment.multipliers.xflip": -0.5}), "config.augment.multipliers.xflip must be >= 0"),
    (dict(freeze_d=-1), "config.freeze_d must be >= 0"),
    (dict(**{"optimizer.nonfinite_grads": "ignore"}), "config.optimizer.nonfinite_grads must be one of"),
    (dict(**{"model.mbstd_group_size": 5}), "config.model.mbstd_group_size"),
    (dict(**{"model.z_dim": 0}), "config.model.z_dim must be >= 1, got 0"),
    (dict(**{"model.channel_max": 0}), "config.model.channel_max must be >= 1, got 0"),
    (dict(**{"model.map_layers": 0}), "config.model.map_layers must be >= 1, got 0"),
    (dict(**{"model.num_fp16_res": -1}), "config.model.num_fp16_res must be >= 0, got -1"),
    (dict(**{"model.conv_clamp": 0.0}), "config.model.conv_clamp must be positive"),
    (dict(**{"model.g_architecture": "unet"}), "config.model.g_architecture must be one of"),
    (dict(**{"model.remat": True, "model.arch": "stylegan"}), "config.model.remat needs model.arch in"),
])
def test_impossible_values_fail_naming_the_key(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_config(_digits_config(**changes), num_devices=8)


def test_unknown_keys_are_named():
    config = _digits_config()
    config.model.widht = 3
    config.typo = 1
    with pytest.raises(ValueError, match=r"unknown config key\(s\): .*model\.widht"):
        validate_config(config, num_devices=8)


def test_unknown_metrics_fail_at_start_up():
    with pytest.raises(ValueError, match=r"config\.metrics: unknown metric\(s\) \['fid51k'\]"):
        validate_config(_digits_config(metrics=("fid50k_full", "fid51k")), num_devices=8)


def test_metric_weight_files_are_checked_at_start_up(tmp_path):
    config = _digits_config(**{"metric_weights.vgg16": str(tmp_path / "missing_vgg16.npz")})
    with pytest.raises(ValueError, match=r"config\.metric_weights\.vgg16: no such file .*missing_vgg16\.npz"):
        validate_config(config, num_devices=8)


def test_metric_weights_reach_the_metric_options(tmp_path, monkeypatch):
    import stylegan_jax.eval
    from stylegan_jax.eval import inputs
    from stylegan_jax.training import loop

    seen = {}
    monkeypatch.setattr(stylegan_jax.eval, "run_metrics", lambda names, options: seen.update(options=options) or [])
    monkeypatch.setattr(inputs, "generator_source", lambda G, variables, prompts: None)
    monkeypatch.setattr(inputs, "dataset_source", lambda dataset: None)
    config = _digits_config(**{"metric_weights.vgg16": "/weights/vgg16.npz", "metrics": ("pr1k3_full",)})
    assert loop._run_metrics(config, None, {}, None) == {}
    options = seen["options"]
    assert (options.vgg16_weights, options.inception_weights, options.lpips_weights) == ("/weights/vgg16.npz", None, None)
