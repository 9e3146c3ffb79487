"""The sharded training step: device-count independence, regularisation phases, NaN skipping."""
import jax
import numpy as np
import pytest
from jax.sharding import Mesh

from stylegan_jax.networks.discriminator import Discriminator
from stylegan_jax.networks.stylegan2 import Generator
from stylegan_jax.augment import augment_spec
from stylegan_jax.training.ada import AugmentConfig
from stylegan_jax.training.config import default_config
from stylegan_jax.training.trainer import LossConfig, OptimizerConfig, Trainer

BATCH = 8
LOSS = LossConfig(**{**default_config().loss, **dict(r1_gamma=1.0, pl_weight=2.0, style_mixing_prob=0.9,
                                                    g_reg_interval=2, d_reg_interval=2, blur_init_sigma=2.0,
                                                    blur_fade_kimg=0.1)})
OPTIM = OptimizerConfig(**default_config().optimizer)


def _networks():
    G = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3, channel_base=128,
                  channel_max=16, num_fp16_res=0, mapping_kwargs={"num_layers": 2})
    D = Discriminator(c_dim=0, img_resolution=16, img_channels=3, channel_base=128, channel_max=16)
    return G, D


def _trainer(num_devices, **kwargs):
    mesh = Mesh(np.array(jax.devices()[:num_devices]), ("data",))
    return Trainer(*_networks(), LOSS, OPTIM, BATCH, mesh, **kwargs)


@pytest.fixture(scope="module")
def trainer8():
    return _trainer(8)


def _images(steps, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (steps, BATCH, 16, 16, 3), dtype=np.uint8)


def _run(trainer, images, state=None, first_step=0):
    state = trainer.init_state(0) if state is None else state
    labels = trainer.shard_batch(np.zeros((BATCH, 0), np.float32))
    metrics = {}
    for i, batch in enumerate(images):
        step = first_step + i
        state, metrics = trainer.train_step(state, step, step * BATCH, trainer.shard_batch(batch), labels,
                                            (labels,) * len(trainer.phases), ema_kimg=0.1, ema_rampup=0.05)
    return state, metrics


def _max_abs_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def test_eight_devices_equal_one_device_at_the_same_global_batch(trainer8):
    images = _images(3)
    state8, metrics = _run(trainer8, images)
    state1, _ = _run(_trainer(1), images)
    assert {"loss/G", "loss/pl_penalty", "loss/D", "loss/r1_penalty"} <= set(metrics)
    for field in ("g", "d", "g_ema", "g_opt", "d_opt"):
        assert _max_abs_diff(getattr(state8, field), getattr(state1, field)) < 1e-5, field
    assert int(state8.step) == 3 and int(state8.nimg) == 3 * BATCH and int(state8.skipped) == 0
    assert np.isclose(float(state8.pl_mean), float(state1.pl_mean), rtol=1e-5)
    assert float(state8.pl_mean) > 0
    # w_avg was tracked during the D phases and copied into the EMA generator.
    w_avg = state8.g["buffers"]["mapping"]["w_avg"]
    assert float(np.abs(w_avg).sum()) > 0
    np.testing.assert_array_equal(state8.g_ema["buffers"]["mapping"]["w_avg"], w_avg)
    # The parameters moved.
    assert _max_abs_diff(state8.g["params"], trainer8.init_state(0).g["params"]) > 0


def test_non_finite_iterations_are_skipped_and_counted(trainer8):
    state, _ = _run(trainer8, _images(1))
    # Poison the discriminator with a NaN weight: every later loss is NaN.
    d = jax.tree_util.tree_map(np.array, state.d)
    d["params"]["b4"]["out"]["weight"][:] = np.nan
    expected_d = jax.tree_util.tree_map(np.array, d["params"])
    expected_opt = jax.tree_util.tree_map(np.array, state.d_opt)
    state = state.replace(d=jax.device_put(d, trainer8.replicated))
    state, metrics = _run(trainer8, _images(2, seed=1), state=state, first_step=1)
    assert not bool(metrics["finite/Dmain"]) and not bool(metrics["finite/Gmain"])
    assert int(state.skipped) == 2 and int(state.streak) == 2 and int(state.worst_streak) == 2
    # The skipped D updates wrote nothing: parameters and optimiser state are unchanged.
    same = lambda a, b: all(np.array_equal(x, y, equal_nan=True) for x, y in zip(
        jax.tree_util.tree_leaves(jax.tree_util.tree_map(np.asarray, a)), jax.tree_util.tree_leaves(b)))
    assert same(state.d["params"], expected_d)
    assert same(state.d_opt, expected_opt)
    # G's path-length phase does not involve D and stays finite; nothing NaN reached G.
    assert all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(state.g["params"]))


def test_regularisation_phases_leave_unreached_parameters_out_of_adam(trainer8):
    """Like torch's Adam: toRGB biases get no path-length gradient, D's output bias no R1 gradient."""
    state, _ = _run(trainer8, _images(1))  # step 0 runs Gmain, Greg, Dmain, Dreg
    g_steps, d_steps = state.g_opt.step, state.d_opt.step
    for res in (4, 8, 16):
        assert int(g_steps["synthesis"][f"b{res}"]["torgb"]["bias"]) == 1
        assert int(g_steps["synthesis"][f"b{res}"]["torgb"]["weight"]) == 2
        assert int(g_steps["synthesis"][f"b{res}"]["conv1"]["bias"]) == 2  # reached with zeros, as in torch
    assert int(d_steps["b4"]["out"]["bias"]) == 1 and int(d_steps["b4"]["fc"]["bias"]) == 2


def test_freeze_d_keeps_the_first_layers_out_of_the_optimiser():
    trainer = _trainer(8, freeze_d=2)
    assert trainer.frozen_d == {("b16", "fromrgb"), ("b16", "conv0")}
    initial = trainer.init_state(0)
    before = jax.tree_util.tree_map(np.array, initial.d["params"])
    assert "fromrgb" not in initial.d_opt.step["b16"] and "conv0" not in initial.d_opt.step["b16"]
    state, _ = _run(trainer, _images(2), state=initial)
    for layer in ("fromrgb", "conv0"):
        for name, value in state.d["params"]["b16"][layer].items():
            np.testing.assert_array_equal(value, before["b16"][layer][name])
    assert not np.array_equal(state.d["params"]["b16"]["conv1"]["weight"], before["b16"]["conv1"]["weight"])
    with pytest.raises(ValueError, match="freeze_d=99"):
        _trainer(8, freeze_d=99)


def test_ada_adjusts_p_from_the_signs_of_the_real_logits():
    ada = AugmentConfig(mode="ada", spec=augment_spec("bgc"), p=0.0, target=0.6, interval=2, kimg=0.1)
    trainer = _trainer(8, augment=ada)
    state, metrics = _run(trainer, _images(4))
    # Every 2 iterations p moves by 8 * 2 / 100 up or down (never below 0), from the accumulated signs.
    p = float(metrics["augment/p"])
    assert np.isclose(p / 0.16, round(p / 0.16), atol=1e-5) and 0 <= p <= 0.32 + 1e-6
    assert float(state.ada_sign_count) == 0  # the statistics restart after each adjustment
    state, metrics = _run(trainer, _images(1, seed=3), state=state, first_step=4)
    assert float(state.ada_sign_count) == BATCH * 2  # Dmain and Dreg of step 4 each report B signs
