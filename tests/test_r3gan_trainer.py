"""R3GAN on the shared Trainer: one official iteration against the golden loss files, schedules, configs,
and `main` training, snapshotting and resuming an R3GAN run like a straight one."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh

from conftest import GOLDEN, load_golden, relative_error
from r3gan_replay import load_phase_networks
from stylegan_jax.convert.state_dict import build_network, flatten_variables
from stylegan_jax.training import config as config_lib
from stylegan_jax.training.loop import train_and_evaluate
from stylegan_jax.training.r3gan_schedule import PRESETS, ema_beta
from stylegan_jax.training.r3gan_trainer import R3GANTrainer
from stylegan_jax.training.trainer import OptimizerConfig

LR, BETA2, EPS = 2e-4, 0.9, 1e-8


def _golden_trainer(name: str):
    """An R3GANTrainer (up to 4 devices, no augmentation) at the golden networks, its state and the loss file."""
    data = load_golden(name)
    nets = load_phase_networks(str(GOLDEN / name), data)
    (G, g_vars), (D, d_vars) = nets["G"], nets["D"]
    optim = OptimizerConfig(g_lr=LR, d_lr=LR, beta1=0.0, beta2=0.99, eps=EPS, nonfinite_grads="skip")
    batch = data["input/z"].shape[0]
    devices = max(d for d in range(1, 5) if batch % d == 0)
    mesh = Mesh(np.array(jax.devices()[:devices]), ("data",))
    trainer = R3GANTrainer(G, D, PRESETS["CIFAR10"], optim, batch_size=batch, mesh=mesh)
    # A copy per leaf: the loaded trees share one kernel array between layers, and a donated state
    # must not hold one buffer twice.
    put = lambda tree: jax.device_put(jax.tree_util.tree_map(lambda x: np.array(x, copy=True), tree),
                                      trainer.replicated)
    state = trainer.init_state(0)
    state = state.replace(g=put(g_vars), g_ema=put(g_vars), d=put(d_vars))
    return trainer, state, data


@pytest.fixture(scope="module", params=["r3gan_32_loss.npz", "r3gan_32c_loss.npz"])
def golden_phases(request):
    """The trainer's D phase and G phase, each run once from the golden parameters."""
    trainer, state, data = _golden_trainer(request.param)
    real = trainer.shard_batch(data["input/real_uint8"].transpose(0, 2, 3, 1).astype(np.uint8))
    c = trainer.shard_batch(data["input/c"].astype(np.float32))
    draws = {"main": dict(z=jnp.asarray(data["input/z"]), aug_real=None, aug_fake=None)}
    hyper = {"lr": jnp.float32(LR), "beta2": jnp.float32(BETA2), "gamma": jnp.float32(data["input/gamma"]),
             "aug_p": jnp.float32(0)}
    before = {"d": jax.device_get(state.d["params"]), "g": jax.device_get(state.g["params"])}
    after_d, d_metrics = trainer.phase_fns["D"](state, real, c, c, draws, hyper=hyper)
    d_params = jax.device_get(after_d.d["params"])
    _, state = _golden_trainer(request.param)[:2]
    after_g, g_metrics = trainer.phase_fns["G"](state, real, c, c, draws, hyper=hyper)
    return data, before, {"d": d_params, "g": jax.device_get(after_g.g["params"])}, {**d_metrics, **g_metrics}


def test_phase_losses_match_the_official_trainer(golden_phases):
    data, _, _, metrics = golden_phases
    for ours, theirs in (("loss/D", "output/D/adv_mean"), ("loss/r1_penalty", "output/D/r1_mean"),
                         ("loss/r2_penalty", "output/D/r2_mean"), ("loss/G", "output/G/loss")):
        assert relative_error(metrics[ours], data[theirs]) < 1e-5, ours
    assert bool(metrics["finite/D"]) and bool(metrics["finite/G"])


@pytest.mark.parametrize("net", ["d", "g"])
def test_first_adam_step_moves_every_parameter_by_the_official_gradient(golden_phases, net):
    """At Adam's first step with beta1 0 the update is lr * g / (|g| + eps): the official gradient
    (adversarial part plus R1 and R2 with their second-order terms for D) fixes it."""
    data, before, after, _ = golden_phases
    prefix = "grad_param_D/" if net == "d" else "grad_param_G/"
    old, new = flatten_variables({"params": before[net]}), flatten_variables({"params": after[net]})
    checked = 0
    for name, (_, _, old_value) in old.items():
        grad = np.asarray(data[prefix + name], np.float64)
        delta = np.asarray(new[name][2], np.float64) - np.asarray(old_value, np.float64)
        assert delta.shape == grad.shape, name  # R3GAN parameters keep the official layouts
        expected = -LR * grad / (np.abs(grad) + EPS)
        rounding = 2 * np.spacing(np.abs(np.asarray(old_value, np.float32))).astype(np.float64)  # of p - update
        assert np.all(np.abs(delta) <= LR + rounding), name
        clear = np.abs(grad) > 1e-3 * np.sqrt(np.mean(np.square(grad)))  # sign not decided by rounding
        error = np.abs(delta - expected)[clear]
        assert np.all(error <= LR * 1e-3 + rounding[clear]), (name, float(np.max(error)))
        checked += int(np.sum(clear))
    assert checked > 0.9 * sum(np.size(v[2]) for v in old.values())


def test_an_iteration_takes_two_real_batches_d_first_then_g():
    trainer, _, _ = _golden_trainer("r3gan_32_loss.npz")
    assert [(p.name, p.data_batch) for p in trainer.phases] == [("D", 0), ("G", 1)]
    assert trainer.batches_per_step == 2


def test_scheduled_values_and_ema_follow_the_official_preset():
    trainer, _, _ = _golden_trainer("r3gan_32_loss.npz")
    preset = PRESETS["CIFAR10"]
    for nimg in (0, 12_345, 10_000_000, 30_000_000):
        values = trainer.hyperparameters(nimg)
        expected = preset.at(nimg)
        for key in ("lr", "beta2", "gamma", "aug_p"):
            assert values[key] == np.float32(expected[key]), (nimg, key)
        assert trainer.ema_decay(nimg, ema_kimg=10.0, ema_rampup=0.05) == ema_beta(4, expected["ema_nimg"])


def _tiny_r3gan_config():
    c = config_lib.default_config()
    c.model.arch = "r3gan"
    c.model.z_dim = 16
    c.model.r3gan.widths = (16, 16, 8)
    c.model.r3gan.cardinalities = (2, 2, 1)
    c.model.r3gan.blocks = (1, 1, 1)
    c.model.r3gan.fp16_stages = ()
    c.dataset.source = "digits"
    c.dataset.resolution = 16
    c.augment.mode = "scheduled"
    c.augment.pipe = "color"
    c.batch_size = 8
    c.total_kimg = 0.032           # 4 iterations
    c.snapshot_kimg = 0.016
    c.tick_kimg = 0.016
    c.grid_size = (4, 2)
    c.schedule.decay_kimg = 0.05   # every schedule moves within the run
    c.schedule.ema_kimg = (0.0, 0.02)
    c.schedule.aug_p = (0.0, 0.5)
    return c


@pytest.mark.slow
def test_r3gan_trains_through_main_and_resumes_like_a_straight_run(tmp_path):
    straight = train_and_evaluate(_tiny_r3gan_config(), str(tmp_path / "straight"))
    config = _tiny_r3gan_config()
    config.total_kimg = 0.016
    train_and_evaluate(config, str(tmp_path / "run"))
    resumed = train_and_evaluate(_tiny_r3gan_config(), str(tmp_path / "run"))
    assert int(resumed.step) == int(straight.step) == 4
    assert 0 < float(straight.augment_p) == float(resumed.augment_p) < 0.5
    for field in ("g", "d", "g_ema", "g_opt", "d_opt"):
        for x, y in zip(jax.tree_util.tree_leaves(getattr(resumed, field)),
                        jax.tree_util.tree_leaves(getattr(straight, field))):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-6, rtol=1e-6, err_msg=field)
    assert list((tmp_path / "run").glob("fakes_kimg*.png"))
    moved = [float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in
             zip(jax.tree_util.tree_leaves(straight.g_ema["params"]), jax.tree_util.tree_leaves(straight.g["params"]))]
    assert max(moved) > 0  # the EMA lags G once the scheduled EMA length grows


@pytest.mark.parametrize("key, value, message", [
    ("dataset.channels", 1, "must be 3: R3GAN generates RGB"),
    ("augment.mode", "ada", "must be 'scheduled'"),
    ("schedule.lr", (2e-4,), "must be a pair"),
    ("schedule.aug_p", (0.0, 1.5), "in [0, 1]"),
    ("model.r3gan.widths", (16, 16), "does not give a 16x16 network"),
    ("model.r3gan.cardinalities", (3, 2, 1), "cardinality 3 does not divide"),
    ("metrics", ("fid1k_full", "ppl2_wend"), "cannot hold PPL or equivariance metrics for R3GAN"),
])
def test_bad_r3gan_settings_fail_at_start_up_naming_the_key(key, value, message):
    config = _tiny_r3gan_config()
    parent = config
    *path, leaf = key.split(".")
    for part in path:
        parent = parent[part]
    parent[leaf] = value
    with pytest.raises(ValueError, match=None) as error:
        config_lib.validate_config(config, 8)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_scheduled_augmentation_is_refused_for_stylegan():
    config = _tiny_r3gan_config()
    config.model.arch = "stylegan2"
    with pytest.raises(ValueError, match="'scheduled' follows R3GAN's schedule"):
        config_lib.validate_config(config, 8)


def test_the_official_arguments_mirror_g_for_d():
    config = _tiny_r3gan_config()
    config.model.r3gan.fp16_stages = (-1, -2)
    (g_class, g), (d_class, d) = config_lib.network_specs(config, c_dim=3, img_channels=3)
    assert (g_class, d_class) == ("training.networks.Generator", "training.networks.Discriminator")
    assert d["WidthPerStage"] == [8, 16, 16] and d["CardinalityPerStage"] == [1, 2, 2]
    assert d["FP16Stages"] == [1, 0]  # train.py: x + len(FP16Stages)
    assert g["ConditionEmbeddingDimension"] == 16 and d["ConditionEmbeddingDimension"] == 16
    G = build_network(g_class, g)
    assert G.z_dim == 16 and G.c_dim == 3


@pytest.mark.parametrize("name, preset", [("r3gan_cifar10", "CIFAR10"), ("r3gan_ffhq256", "FFHQ-256"),
                                          ("r3gan_imagenet64", "ImageNet-64"), ("r3gan_utkface", "FFHQ-64"),
                                          ("study_digits32_r3gan", "CIFAR10")])
def test_r3gan_config_files_validate_and_keep_the_official_recipe(name, preset):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, pathlib.Path(__file__).parents[1] / "configs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    config.dataset.source, config.dataset.path = "digits", ""  # the data itself is not here
    config_lib.validate_config(config, num_devices=8)
    official = PRESETS[preset]
    assert config.model.arch == "r3gan" and config.schedule.lr == (official.lr.base, official.lr.final)
    assert config.schedule.beta2 == (official.beta2.base, official.beta2.final)
    assert config.schedule.gamma == (official.gamma.base, official.gamma.final)
    assert len(config.model.r3gan.widths) == int(np.log2(config.dataset.resolution)) - 1
    if name.startswith("r3gan_") and name != "r3gan_utkface":  # the presets themselves
        assert config.batch_size == official.batch_size and config.schedule.decay_kimg * 1000 == official.lr.total_nimg
        assert config.augment.mode == "scheduled" and config.schedule.aug_p == (0.0, official.aug_p.final)
        assert config.augment.multipliers.hue == 0.5 and config.augment.multipliers.cutout == 1.0
        assert config.model.compute_dtype == "bfloat16"
