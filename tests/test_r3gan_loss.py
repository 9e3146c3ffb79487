"""R3GAN's loss, penalties, schedules and EMA at parity with the official trainer (golden loss files)."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import GOLDEN, load_golden, relative_error
from official_replay import replay_r3gan_loss
from stylegan_jax.convert import to_official_state_dict
from stylegan_jax.convert.state_dict import build_network
from stylegan_jax.training.r3gan_loss import critic, discriminator_loss, generator_loss
from stylegan_jax.training.r3gan_schedule import PRESETS, CosineSchedule, ema_beta, update_ema

# README "R3GAN files": losses and penalties under 1e-5, gradients under 1e-4 (relative, per tensor).
VALUE_TOL = 1e-5
GRAD_TOL = 1e-4
CONTRACT = ("D/loss", "D/adv_mean", "D/r1_mean", "D/r2_mean", "G/loss")


@pytest.fixture(scope="module", params=["r3gan_32_loss.npz", "r3gan_32c_loss.npz"])
def replayed(request):
    data = load_golden(request.param)
    return data, replay_r3gan_loss(str(GOLDEN / request.param))


def test_every_loss_term_penalty_and_input_gradient_matches_official(replayed):
    data, ours = replayed
    outputs = [k for k in data.keys() if k.startswith("output/")]
    assert {f"output/{k}" for k in CONTRACT} <= set(outputs) and len(outputs) == 16
    for key in outputs:
        assert ours[key[len("output/"):]].shape == data[key].shape, key
        assert relative_error(ours[key[len("output/"):]], data[key]) < VALUE_TOL, key
    # The penalties are about 10% of the loss at gamma 15 (1e-3..1e-2 per sample): compared relatively.
    assert 1e-4 < float(data["output/D/r1_mean"]) < 0.1


@pytest.mark.parametrize("part", ["grad_param_D", "grad_param_D_adv", "grad_param_D_r1", "grad_param_D_r2",
                                  "grad_param_G"])
def test_parameter_gradients_match_official_including_second_order_terms(replayed, part):
    data, ours = replayed
    names = [k for k in data.keys() if k.split("/")[0] == part]
    assert len(names) > 40 and {k for k in ours if k.split("/")[0] == part} == set(names)
    for key in names:
        assert relative_error(ours[key], data[key]) < GRAD_TOL, key


def test_the_discriminator_gradient_is_the_sum_of_its_parts(replayed):
    data, ours = replayed
    gamma = float(data["input/gamma"])
    assert float(ours["D/loss"]) == pytest.approx(
        float(ours["D/adv_mean"]) + gamma / 2 * (float(ours["D/r1_mean"]) + float(ours["D/r2_mean"])), rel=1e-6)
    for key in [k for k in ours if k.startswith("grad_param_D/")]:
        name = key.split("/", 1)[1]
        penalties = ours[f"grad_param_D_r1/{name}"] + ours[f"grad_param_D_r2/{name}"]
        parts = ours[f"grad_param_D_adv/{name}"] + gamma / 2 * penalties
        assert relative_error(ours[key], parts) < 1e-5, key


def _linear_critic(weights):
    """D(x) = <w, x> per sample: its input gradient is w, whatever x is."""
    return lambda x, c: jnp.sum(x * weights, axis=(1, 2, 3))


def test_penalties_are_taken_through_the_augmentation_at_the_unaugmented_images():
    key = jax.random.key(0)
    w = jax.random.normal(key, (1, 4, 4, 3))
    real, fake = jax.random.normal(jax.random.key(1), (2, 3, 4, 4, 3))
    flip_and_scale = lambda x: 2 * x[:, :, ::-1]
    score = critic(_linear_critic(w), augment=flip_and_scale)
    loss, terms = discriminator_loss(score, score, real, fake, gamma=3.0)
    expected_penalty = 4 * float(jnp.sum(w ** 2))
    np.testing.assert_allclose(terms.r1, expected_penalty, rtol=1e-6)
    np.testing.assert_allclose(terms.r2, expected_penalty, rtol=1e-6)
    np.testing.assert_allclose(terms.real_input_grads, np.broadcast_to(2 * w[:, :, ::-1], real.shape), rtol=1e-6)
    np.testing.assert_allclose(terms.relativistic_logits, score(real) - score(fake), rtol=1e-5)
    assert float(loss) == pytest.approx(float(jnp.mean(jax.nn.softplus(-(score(real) - score(fake))))) +
                                        1.5 * 2 * expected_penalty, rel=1e-6)
    # Neither phase sends gradients to the other player's images.
    d_loss_by_images = jax.grad(lambda r, f: discriminator_loss(score, score, r, f, 3.0)[0], argnums=(0, 1))
    assert not any(np.any(g) for g in d_loss_by_images(real, fake))
    g_loss_by_images = jax.grad(lambda r, f: generator_loss(score, score, r, f)[0], argnums=(0, 1))(real, fake)
    assert not np.any(g_loss_by_images[0]) and np.any(g_loss_by_images[1])


def test_each_generated_sample_is_paired_with_the_real_sample_of_its_index():
    score = lambda x: x[:, 0, 0, 0]
    real = jnp.arange(3.0).reshape(3, 1, 1, 1)
    fake = jnp.array([5.0, 0.0, -1.0]).reshape(3, 1, 1, 1)
    _, d_terms = discriminator_loss(score, score, real, fake, gamma=0.0)
    _, g_terms = generator_loss(score, score, real, fake)
    np.testing.assert_allclose(d_terms.relativistic_logits, [-5.0, 1.0, 3.0])
    np.testing.assert_allclose(g_terms.adversarial, jax.nn.softplus(-jnp.array([5.0, -1.0, -3.0])), rtol=1e-6)


def _preset(name: str) -> str:
    return name.removesuffix("-cond")


def test_schedules_match_the_official_presets_at_every_recorded_point():
    data = load_golden("r3gan_32_loss.npz")
    nimg = data["sched/kimg"] * 1000
    names = sorted({k.split("/")[1] for k in data.keys() if k.startswith("sched/") and k != "sched/kimg"})
    assert len(names) == 6
    for name in names:
        schedules = PRESETS[_preset(name)]
        assert schedules.batch_size == int(data[f"sched/{name}/batch_size"])
        values = [schedules.at(t) for t in nimg]
        for quantity in ("lr", "beta2", "gamma", "ema_nimg", "aug_p", "ema_beta"):
            np.testing.assert_allclose([v[quantity] for v in values], data[f"sched/{name}/{quantity}"],
                                       rtol=1e-12, atol=1e-300, err_msg=f"{name}/{quantity}")


def test_preset_table_is_the_official_configuration():
    presets = json.loads(str(load_golden("r3gan_32_loss.npz")["meta/presets"]))
    for name, preset in presets.items():
        ours = PRESETS[_preset(name)]
        assert ours.batch_size == preset["batch_size"]
        for quantity in ("lr", "beta2", "gamma", "ema", "aug"):
            official = preset[f"{quantity}_scheduler"]
            schedule = getattr(ours, {"ema": "ema_nimg", "aug": "aug_p"}.get(quantity, quantity))
            assert schedule == CosineSchedule(official["base_value"], official["final_value"], official["total_nimg"])


def test_ema_follows_the_official_formula():
    assert ema_beta(512, 0.0) == 0.0  # no averaging before the EMA length grows
    assert ema_beta(64, 6400.0) == pytest.approx(0.5 ** 0.01)
    params = {"w": jnp.array([1.0, 2.0]), "b": jnp.array(3.0)}
    ema = {"w": jnp.array([0.0, 4.0]), "b": jnp.array(1.0)}
    for beta in (0.0, 0.3, 0.9):
        new = update_ema(ema, params, beta)
        for k in params:
            np.testing.assert_allclose(new[k], beta * ema[k] + (1 - beta) * params[k], rtol=1e-6)
    assert update_ema(ema, params, 0.0)["b"] == 3.0


def _network_file(path, class_name: str, init_kwargs: dict, seed: int) -> float:
    """Writes a network file of the golden layout with fresh (perturbed) parameters; returns its checksum."""
    module = build_network(class_name, init_kwargs)
    variables = jax.jit(module.init)(jax.random.key(seed), *module.example_inputs())
    # The last conv of every block starts at zero; give every parameter some value, as the golden files do.
    rng = np.random.default_rng(seed)
    params = jax.tree_util.tree_map(lambda x: x + 0.05 * rng.standard_normal(x.shape), variables["params"])
    state = to_official_state_dict(module, {**variables, "params": params})
    np.savez(path, **state, **{"meta/class_name": class_name, "meta/init_kwargs": json.dumps(init_kwargs)})
    return sum(float(np.sum(v, dtype=np.float64)) for v in state.values())


def test_replay_follows_the_format_not_the_shapes_of_the_shared_files(tmp_path):
    """Other widths, resolution, classes, gamma and scale: the replay runs and its parts add up."""
    g_kwargs = dict(NoiseDimension=8, WidthPerStage=[16, 8, 8], CardinalityPerStage=[2, 1, 1], BlocksPerStage=[1, 1, 1],
                    ExpansionFactor=2, FP16Stages=[], c_dim=5, ConditionEmbeddingDimension=8, img_resolution=16)
    d_kwargs = dict(WidthPerStage=[8, 8, 16], CardinalityPerStage=[1, 1, 2], BlocksPerStage=[1, 1, 1],
                    ExpansionFactor=2, FP16Stages=[], c_dim=5, ConditionEmbeddingDimension=16, img_resolution=16)
    g_sum = _network_file(tmp_path / "g.npz", "training.networks.Generator", g_kwargs, 1)
    d_sum = _network_file(tmp_path / "d.npz", "training.networks.Discriminator", d_kwargs, 2)
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (2, 3, 16, 16)).astype(np.float32) / 127.5 - 1
    np.savez(tmp_path / "loss.npz", **{
        "meta/G_file": "g.npz", "meta/D_file": "d.npz", "meta/G_init_kwargs": json.dumps(g_kwargs),
        "meta/D_init_kwargs": json.dumps(d_kwargs), "meta/G_param_checksum": g_sum, "meta/D_param_checksum": d_sum,
        "input/real": real, "input/z": rng.standard_normal((2, 8)).astype(np.float32),
        "input/c": np.eye(5, dtype=np.float32)[[1, 4]], "input/gamma": np.float32(3.0), "input/scale": np.float32(0.5)})
    ours = replay_r3gan_loss(str(tmp_path / "loss.npz"))
    assert set(CONTRACT) <= set(ours)
    assert ours["fake_img"].shape == (2, 3, 16, 16) and ours["D/r1"].shape == (2,)
    assert float(ours["D/loss"]) == pytest.approx(
        float(ours["D/adv_mean"]) + 1.5 * (float(ours["D/r1_mean"]) + float(ours["D/r2_mean"])), rel=1e-6)
    assert float(ours["G/loss"]) == pytest.approx(float(np.mean(ours["G/adv_loss"])), rel=1e-6)
    name = "Model.EmbeddingLayer.weight"
    parts = ours[f"grad_param_D_adv/{name}"] + 1.5 * (ours[f"grad_param_D_r1/{name}"] + ours[f"grad_param_D_r2/{name}"])
    assert np.abs(ours[f"grad_param_D/{name}"]).max() > 0
    assert relative_error(ours[f"grad_param_D/{name}"], parts) < 1e-5
    assert ours[f"grad_param_G/{name}"].shape == (8, 5)
    # A network file that is not the one the loss file was made with is refused.
    _network_file(tmp_path / "g.npz", "training.networks.Generator", g_kwargs, 3)
    with pytest.raises(ValueError, match="checksum"):
        replay_r3gan_loss(str(tmp_path / "loss.npz"))
