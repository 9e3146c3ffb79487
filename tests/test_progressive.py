"""Progressive growing: the official lod schedule, one compilation per level across a fade, Adam
resets, reals reduced to the level, resume mid-fade, and the evolution configs."""
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_config import override

from stylegan_jax.configs_common import sibling_config, stylegan2019_config
from stylegan_jax.convert.state_dict import build_network
from stylegan_jax.training import config as config_lib
from stylegan_jax.training.loop import make_trainer, train_and_evaluate
from stylegan_jax.training.progressive import GrowthSchedule

EVOLUTION = pathlib.Path(__file__).resolve().parents[1] / "configs" / "evolution"
STEPS = ("a_stylegan", "b_weight_demodulation", "c_lazy_regularization", "d_path_length", "e_no_growing",
         "f_large_networks")


def test_schedule_follows_the_official_training_schedule():
    s = GrowthSchedule(full_resolution=32, initial_resolution=8, training_kimg=600, transition_kimg=600)
    # 8x8 for 600 kimg, 16x16 fades in over 600, trains 600, 32x32 fades in over 600, then stays.
    expected = {0: 2.0, 599: 2.0, 900: 1.5, 1200: 1.0, 1799: 1.0, 2100: 0.5, 2400: 0.0, 9000: 0.0}
    for kimg, lod in expected.items():
        assert s.lod(kimg * 1000) == pytest.approx(lod)
    assert [s.level(s.lod(k * 1000)) for k in (0, 900, 1200, 2100, 2400)] == [8, 16, 16, 32, 32]
    assert s.resolutions == [8, 16, 32]
    with pytest.raises(ValueError, match="power of two from 4 to 32"):
        GrowthSchedule(full_resolution=32, initial_resolution=12)


def _tiny(step: str = "a_stylegan.py", **overrides):
    c = sibling_config(str(EVOLUTION / "a.py"), step, "small")
    c.dataset.resolution = 16
    c.batch_size = 8
    c.model.z_dim = c.model.w_dim = 16
    c.model.channel_base, c.model.channel_max = 128, 16
    c.progressive.training_kimg, c.progressive.transition_kimg = 0.016, 0.032  # 2 steps, then a 4-step fade
    c.progressive.batch_by_resolution = ()  # batch 8 at every level
    c.total_kimg = 0.064
    c.snapshot_kimg = c.tick_kimg = 0.032
    c.grid_size = (2, 2)
    return override(c, overrides)


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="needs model.arch 'stylegan', or 'stylegan2' with"):
        config_lib.validate_config(_tiny(**{"model.arch": "stylegan2"}), 1)
    with pytest.raises(ValueError, match="config.progressive.initial_resolution: the initial resolution"):
        config_lib.validate_config(_tiny(**{"progressive.initial_resolution": 32}), 1)
    with pytest.raises(ValueError, match="square dataset.resolution"):
        config_lib.validate_config(_tiny(**{"dataset.resolution": "16x32"}), 1)
    with pytest.raises(ValueError, match=r"config.progressive.batch_by_resolution the batch at 8 px must be a "
                                         r"positive multiple of the 8 devices, got \(\(8, 12\),\)"):
        config_lib.validate_config(_tiny(**{"progressive.batch_by_resolution": ((8, 12),)}), 8)
    with pytest.raises(ValueError, match=r"config.model.mbstd_group_size must divide the batch at 8 px "
                                         r"\(progressive.batch_by_resolution\), got 4"):
        config_lib.validate_config(_tiny(**{"progressive.batch_by_resolution": ((8, 6),)}), 1)
    with pytest.raises(ValueError, match="batch_by_resolution needs progressive growing"):
        config_lib.validate_config(_tiny(**{"progressive.initial_resolution": 0,
                                            "progressive.batch_by_resolution": ((8, 16),)}), 1)


def test_each_level_trains_at_its_own_batch_size():
    config = _tiny(**{"progressive.batch_by_resolution": ((8, 16), (4, 64))})  # 4 px is not a level: ignored
    assert config_lib.data_batch_size(config) == 8
    (g_name, g_kwargs), (d_name, d_kwargs) = config_lib.network_specs(config, c_dim=0, img_channels=1)
    trainer = make_trainer(config, build_network(g_name, g_kwargs), build_network(d_name, d_kwargs))
    # 8x8 (lod 1) for 16 images, then 16x16 fades in: the official minibatch of the schedule's level.
    assert [trainer.step_batch_size(nimg) for nimg in (0, 16, 17, 32, 64)] == [16, 16, 8, 8, 8]
    assert trainer.level_trainer(8).batch_size == 16 and trainer.batch_size == 8


@pytest.fixture(scope="module")
def grown():
    """A ProgressiveTrainer of the 2019 networks run through a fade on 8 devices: (trainer, lods, states)."""
    config = _tiny()
    (g_name, g_kwargs), (d_name, d_kwargs) = config_lib.network_specs(config, c_dim=0, img_channels=1)
    trainer = make_trainer(config, build_network(g_name, g_kwargs), build_network(d_name, d_kwargs))
    state = trainer.init_state(0)
    rng = np.random.default_rng(0)
    labels = trainer.shard_batch(np.zeros((8, 0), np.float32))
    records = []
    for step in range(8):
        images = trainer.shard_batch(rng.integers(0, 256, (8, 16, 16, 1), dtype=np.uint8))
        state, metrics = trainer.train_step(state, step, step * 8, images, labels, (labels,) * len(trainer.phases),
                                            ema_kimg=0.01, ema_rampup=None)
        records.append((float(metrics["progress/lod"]), float(state.d["buffers"]["lod"]),
                        float(state.g_ema["buffers"]["synthesis"]["lod"]),
                        int(state.d_opt.step["4x4"]["Dense1"]["bias"]),
                        bool(np.all([np.isfinite(np.asarray(x)).all() for x in jax.tree_util.tree_leaves(state.g)]))))
    return trainer, records


def test_a_fade_runs_each_level_compiled_once(grown):
    trainer, records = grown
    lods = [r[0] for r in records]
    assert lods == pytest.approx([1, 1, 1, 0.75, 0.5, 0.25, 0, 0])
    assert all(r[1] == r[0] and r[2] == r[0] for r in records)  # G, G_ema and D hold the step's lod
    assert all(r[4] for r in records)
    assert sorted(trainer.levels) == [8, 16]
    for level in trainer.levels.values():
        for name, fn in level.phase_fns.items():
            assert fn._cache_size() <= 1, (level.level, name)  # one compilation per level, the fade is traced
    assert trainer.levels[8].phase_fns["Dboth"]._cache_size() == 1
    assert trainer.levels[16].phase_fns["Dboth"]._cache_size() == 1


def test_adam_is_reset_when_a_fade_starts_and_ends(grown):
    _, records = grown
    # The step count of D's last layer: reset at a run's first step (official), when the fade starts
    # (step 3, lod 1 -> 0.75) and when it ends (step 6, lod 0); it counts up in between.
    assert [r[3] for r in records] == [1, 2, 3, 1, 2, 3, 1, 2]


def test_reals_are_reduced_to_the_level_and_faded():
    config = _tiny()
    (g_name, g_kwargs), (d_name, d_kwargs) = config_lib.network_specs(config, c_dim=0, img_channels=1)
    trainer = make_trainer(config, build_network(g_name, g_kwargs), build_network(d_name, d_kwargs))
    level = trainer.level_trainer(8)
    state = trainer.init_state(0)
    images = np.random.default_rng(1).integers(0, 256, (2, 16, 16, 1)).astype(np.uint8)
    boxed = np.rint(images.reshape(2, 8, 2, 8, 2, 1).astype(np.float64).mean(axis=(2, 4))) / 127.5 - 1
    for lod, fade in ((1.0, 0.0), (1.25, 0.25)):
        state = trainer._set_lod(state, jnp.float32(lod))
        coarse = np.repeat(np.repeat(boxed.reshape(2, 4, 2, 4, 2, 1).mean(axis=(2, 4)), 2, 1), 2, 2)
        np.testing.assert_allclose(level._prepare_reals(state, jnp.asarray(images)), boxed + (coarse - boxed) * fade,
                                   rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_resume_mid_fade_continues_at_the_same_lod(tmp_path, monkeypatch):
    """With per-level batches (16 at 8x8, 8 at 16x16): the lod, the image count and the data continue."""
    from stylegan_jax.data import open_dataset
    from stylegan_jax.training import loop

    taken = []
    take = loop._take
    monkeypatch.setattr(loop, "_take", lambda batches, count: taken.append(take(batches, count)) or taken[-1])
    config = _tiny(**{"total_kimg": 0.040, "progressive.batch_by_resolution": ((8, 16),)})
    first = train_and_evaluate(config, str(tmp_path))
    schedule = config_lib.growth_schedule(config)
    # Steps at 0 and 16 images take 16 (8x8), the one at 32 takes 8 (16x16 fading in): 40 images.
    assert [len(batch["image"]) for batch in taken] == [16, 16, 8] and int(first.nimg) == 40
    assert 0 < float(first.d["buffers"]["lod"]) < 1  # stopped mid-fade
    assert float(first.d["buffers"]["lod"]) == pytest.approx(schedule.lod(32))
    config.total_kimg = 0.064
    resumed = train_and_evaluate(config, str(tmp_path))
    assert "Resumed from step 3 (0.040 kimg" in (tmp_path / "log.txt").read_text()
    assert int(resumed.step) == 6 and int(resumed.nimg) == 64
    assert float(resumed.g["buffers"]["synthesis"]["lod"]) == pytest.approx(schedule.lod(56))
    assert len(list(tmp_path.glob("fakes_kimg*.png"))) >= 2
    # Both runs together saw the dataset's first 64 images in order: the resumed run went on where the first stopped.
    stream = open_dataset(config.dataset, seed=config.seed, batch_size=8).iterate(start_batch=0)
    expected = np.concatenate([next(stream)["image"] for _ in range(8)])
    np.testing.assert_array_equal(np.concatenate([batch["image"] for batch in taken]), expected)


@pytest.mark.parametrize("step", STEPS)
def test_evolution_steps_differ_in_exactly_their_step(step):
    """Each ladder file is get_config(variant) and changes only what its step names."""
    configs = {s: sibling_config(str(EVOLUTION / "a.py"), f"{s}.py", "small") for s in STEPS}
    config_lib.validate_config(configs[step], 1)  # the full variants name /data/ffhq, absent here
    index = STEPS.index(step)
    if index == 0:
        assert configs[step].model.arch == "stylegan" and configs[step].progressive.initial_resolution == 8
        assert stylegan2019_config("small").to_dict() == configs[step].to_dict()
        return
    before = _flat(configs[STEPS[index - 1]].to_dict())
    after = _flat(configs[step].to_dict())
    changed = {key for key in after if after[key] != before[key]}
    expected = {
        "b_weight_demodulation": {"model.arch", "model.g_architecture", "model.d_architecture"},
        "c_lazy_regularization": {"loss.g_reg_interval", "loss.d_reg_interval"},
        "d_path_length": {"loss.pl_weight"},
        "e_no_growing": {"progressive.initial_resolution", "progressive.lr_by_resolution",
                         "progressive.batch_by_resolution", "model.g_architecture", "model.d_architecture",
                         "optimizer.g_lr", "optimizer.d_lr"},
        "f_large_networks": {"model.channel_base", "model.channel_max"},
    }[step]
    assert changed == expected


def _flat(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_full_size_evolution_configs_are_the_papers():
    a = sibling_config(str(EVOLUTION / "a.py"), "a_stylegan.py")
    e = sibling_config(str(EVOLUTION / "a.py"), "e_no_growing.py")
    f = sibling_config(str(EVOLUTION / "a.py"), "f_large_networks.py")
    assert a.dataset.resolution == 1024 and a.progressive.initial_resolution == 8
    assert dict(a.progressive.lr_by_resolution)[1024] == 0.003 and a.optimizer.g_lr == 0.001
    assert e.loss.r1_gamma == 100.0 and e.model.channel_base == 16384
    assert f.model.channel_base == 32768 and f.model.channel_max == 512  # StyleGAN2 config F
    assert math.isclose(f.optimizer.g_lr, 0.002)


def test_metrics_table_collects_each_runs_fid(tmp_path, capsys):
    from stylegan_jax import metrics_table

    for name, rows in (("evo_a", [(4.0, 120.5), (8.0, 80.25)]), ("evo_e", [(4.0, 99.0)])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.jsonl").write_text(
            "".join(f'{{"kimg": {k}, "fid1k_full": {{"fid1k_full": {v}}}}}\n' for k, v in rows))
    assert metrics_table.main([str(tmp_path / "evo_a"), str(tmp_path / "evo_e")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "| kimg | evo_a | evo_e |", "|---|---|---|", "| 4 | 120.50 | 99.00 |", "| 8 | 80.25 | - |"]
    assert metrics_table.main([str(tmp_path / "missing")]) == 1
    assert "has no metrics.jsonl" in capsys.readouterr().err
