"""SS-GAN's rotation loss: the pure pieces, D's rotation head (absent when off), the trainer's terms
(ADA, R1, lazy phases, 8 devices, R3GAN, the 2019 networks), the config keys, and a short run on
real digits in which the head learns the rotations."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh

from stylegan_jax.augment import augment_from_draws, augment_spec
from stylegan_jax.convert.state_dict import build_network
from stylegan_jax.networks import r3gan, stylegan2019
from stylegan_jax.networks.discriminator import Discriminator
from stylegan_jax.networks.stylegan2 import Generator
from stylegan_jax.training import config as config_lib
from stylegan_jax.training import loop
from stylegan_jax.training.ada import AugmentConfig
from stylegan_jax.training.rotation_loss import (
    RotationConfig, accuracy, cross_entropy, rotated_copies, select_examples)
from stylegan_jax.training.trainer import LossConfig, OptimizerConfig, Trainer, to_float_images

BATCH = 8
OPTIM = OptimizerConfig(**config_lib.default_config().optimizer)
ON = dict(alpha=0.2, beta=1.0)


def _loss(rotation=None, **overrides) -> LossConfig:
    settings = dict(r1_gamma=1.0, pl_weight=0.0, style_mixing_prob=0.0, g_reg_interval=0, d_reg_interval=0)
    return LossConfig(**{**config_lib.default_config().loss, **settings, **overrides,
                         "rotation": rotation or {}})


def _sg2(channels=3, resolution=8, rotation_classes=4):
    G = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=resolution, img_channels=channels, channel_base=128,
                  channel_max=32 if channels == 1 else 16, num_fp16_res=0, mapping_kwargs={"num_layers": 2})
    D = Discriminator(c_dim=0, img_resolution=resolution, img_channels=channels, channel_base=128,
                      channel_max=32 if channels == 1 else 16, rotation_classes=rotation_classes)
    return G, D


def _mesh(devices):
    return Mesh(np.array(jax.devices()[:devices]), ("data",))


def _images(seed=0, batch=BATCH):
    return np.random.default_rng(seed).integers(0, 256, (batch, 8, 8, 3), dtype=np.uint8)


# ---- the pure pieces -----------------------------------------------------------------------------
def test_rotated_copies_of_2x2_images_are_quarter_turns_counter_clockwise():
    first = np.array([[0, 1], [2, 3]], np.float32)
    images = jnp.asarray(np.stack([first, first + 10])[..., None])
    rotated, labels = rotated_copies(images)
    turns = [[[0, 1], [2, 3]], [[1, 3], [0, 2]], [[3, 2], [1, 0]], [[2, 0], [3, 1]]]  # 0, 90, 180, 270 degrees
    assert rotated.shape == (8, 2, 2, 1) and labels.dtype == jnp.int32
    np.testing.assert_array_equal(rotated[:4, ..., 0], turns)
    np.testing.assert_array_equal(rotated[4:, ..., 0], np.array(turns) + 10)
    np.testing.assert_array_equal(labels, [0, 1, 2, 3, 0, 1, 2, 3])
    with pytest.raises(ValueError, match="square images, got 2x4"):
        rotated_copies(jnp.zeros((1, 2, 4, 1)))


def test_examples_are_evenly_spaced_and_default_to_a_quarter_of_the_batch():
    rows = jnp.arange(8)
    assert [select_examples(rows, n).tolist() for n in (1, 2, 3, 8)] == [[0], [0, 4], [0, 2, 4], list(range(8))]
    assert [RotationConfig().num_examples(n) for n in (32, 8, 2)] == [8, 2, 1]
    assert RotationConfig(examples=3).num_examples(32) == 3
    assert not RotationConfig().active and RotationConfig(beta=1.0).active


def test_cross_entropy_and_accuracy_of_known_logits():
    logits = jnp.log(jnp.array([[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]]))
    labels = jnp.array([3, 2])
    np.testing.assert_allclose(cross_entropy(logits, labels), -(np.log(0.4) + np.log(0.1)) / 2, rtol=1e-6)
    np.testing.assert_allclose(cross_entropy(jnp.zeros((3, 4)), jnp.array([0, 1, 3])), np.log(4), rtol=1e-6)
    assert float(accuracy(logits, labels)) == 0.5


# ---- the discriminators ------------------------------------------------------------------------------
DISCRIMINATORS = {
    "stylegan2": lambda: Discriminator(c_dim=0, img_resolution=8, img_channels=3, channel_base=64, channel_max=16),
    "stylegan2019": lambda: stylegan2019.Discriminator(c_dim=2, img_resolution=8, img_channels=3, channel_base=64,
                                                       channel_max=16),
    "r3gan": lambda: r3gan.Discriminator(WidthPerStage=[8, 16], CardinalityPerStage=[1, 2], BlocksPerStage=[1, 1],
                                         ExpansionFactor=2, FP16Stages=[], c_dim=0, img_resolution=8),
}


@pytest.mark.parametrize("family", sorted(DISCRIMINATORS))
def test_the_rotation_head_leaves_d_unchanged_and_is_absent_when_off(family):
    D = DISCRIMINATORS[family]()
    images, c = D.example_inputs(4)
    images = jax.random.normal(jax.random.key(1), images.shape)
    c = c.at[:, :1].set(1.0)
    headed = D.clone(rotation_classes=4)

    @jax.jit
    def run(images, c):
        off, on = D.init(jax.random.key(0), images, c), headed.init(jax.random.key(0), images, c)
        return off, on, D.apply(off, images, c), headed.apply(on, images, c), headed.apply(on, images, c, rotation=True)

    off, on, logits, headed_logits, both = run(images, c)
    assert set(on["params"]) == set(off["params"]) | {"rotation"}
    kept = {**on, "params": {k: v for k, v in on["params"].items() if k != "rotation"}}
    assert jax.tree_util.tree_structure(kept) == jax.tree_util.tree_structure(off)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(kept), jax.tree_util.tree_leaves(off)))
    np.testing.assert_array_equal(headed_logits, logits)
    np.testing.assert_array_equal(both[0], logits)
    assert both[1].shape == (4, 4)
    with pytest.raises(ValueError, match="rotation_classes > 0"):
        D.apply(off, images, c, rotation=True)


# ---- the trainer -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def step_metrics():
    """One iteration (Gboth, then Dboth with R1) on 8 devices with ADA and the rotation loss, and the
    metrics of the same D phase without the rotation loss from the same state."""
    ada = AugmentConfig(mode="ada", spec=augment_spec("color"), p=0.5, target=0.6, interval=1, kimg=0.1)
    trainer = Trainer(*_sg2(), _loss(ON), OPTIM, BATCH, _mesh(8), augment=ada)
    plain = Trainer(*_sg2(rotation_classes=0), _loss(), OPTIM, BATCH, _mesh(8), augment=ada)
    real = trainer.shard_batch(_images())
    labels = trainer.shard_batch(np.zeros((BATCH, 0), np.float32))
    _, d_metrics = trainer.phase_fns["Dboth"](trainer.init_state(0), real, labels, labels)
    _, plain_metrics = plain.phase_fns["Dboth"](plain.init_state(0), real, labels, labels)
    state = trainer.init_state(0)
    before = jax.device_get(state.d["params"]["rotation"])
    state, metrics = trainer.train_step(state, 0, 0, real, labels, (labels, labels), ema_kimg=0.1, ema_rampup=None)
    return jax.device_get(metrics), jax.device_get((d_metrics, plain_metrics)), before, jax.device_get(state)


def test_a_sharded_step_with_ada_and_r1_reports_the_rotation_losses(step_metrics):
    metrics, _, before, state = step_metrics
    for kind in ("real", "fake"):
        assert 0.5 < metrics[f"loss/rotation_{kind}"] < 3.0  # about ln 4 for an untrained head
        assert 0 <= metrics[f"rotation/accuracy_{kind}"] <= 1
    assert metrics["loss/r1_penalty"] > 0 and all(metrics[f"finite/{name}"] for name in ("Gboth", "Dboth"))
    assert not np.array_equal(state.d["params"]["rotation"]["weight"], before["weight"])  # D trains its head
    assert float(state.augment_p) != 0.5  # ADA adjusted p from the real logits' signs


def test_the_rotation_term_leaves_the_adversarial_loss_and_r1_alone(step_metrics):
    _, (metrics, plain), _, _ = step_metrics  # the D phase from the same state, with and without
    for key in ("scores/real", "scores/fake", "loss/D", "loss/r1_penalty"):
        np.testing.assert_allclose(metrics[key], plain[key], rtol=1e-5, err_msg=key)
    assert "loss/rotation_real" in metrics and "loss/rotation_real" not in plain


def test_rotation_labels_describe_the_augmented_images_d_sees():
    flips = AugmentConfig(mode="fixed", spec=augment_spec("blit", rotate90=0.0, xint=0.0), p=1.0, target=0.6,
                          interval=4, kimg=1.0)
    trainer = Trainer(*_sg2(), _loss(dict(beta=1.0, examples=4)), OPTIM, BATCH, _mesh(1), augment=flips)
    state = trainer.init_state(0)
    images = to_float_images(jnp.asarray(_images(1)))
    draws = trainer._sample_augment(jax.random.key(3), BATCH)
    chosen = slice(0, BATCH, 2)  # examples=4 of 8: every other image

    @jax.jit
    def losses(d_vars, images, draws):
        p = jnp.float32(1.0)
        weighted, aux = trainer._rotation_term("real", d_vars, images, jnp.zeros((BATCH, 0)), state.nimg, p, draws)

        def loss_of(rotated):
            _, logits = trainer.D.apply(d_vars, rotated, jnp.zeros((rotated.shape[0], 0)), rotation=True)
            return cross_entropy(logits, jnp.tile(jnp.arange(4), rotated.shape[0] // 4))

        augmented = augment_from_draws(images[chosen], [d[chosen] for d in draws], p, flips.spec)
        rotated_first = augment_from_draws(rotated_copies(images[chosen])[0],
                                           [jnp.repeat(d[chosen], 4, axis=0) for d in draws], p, flips.spec)
        return weighted, aux["loss/rotation_real"], loss_of(rotated_copies(augmented)[0]), loss_of(rotated_first)

    weighted, reported, augmented_then_rotated, rotated_then_augmented = losses(state.d, images, draws)
    np.testing.assert_allclose(reported, augmented_then_rotated, rtol=1e-5)
    np.testing.assert_allclose(weighted, reported)  # beta = 1
    assert not np.allclose(reported, rotated_then_augmented, rtol=1e-3)  # the other order differs


def _phase_metric_names(trainer: Trainer) -> dict[str, set[str]]:
    """The metric names of every phase, traced (not compiled)."""
    state = trainer.init_state(0)
    real = trainer.shard_batch(np.zeros((BATCH, *trainer.image_shape, trainer.D.img_channels), np.uint8))
    c = trainer.shard_batch(np.zeros((BATCH, trainer.D.c_dim), np.float32))
    hyper = trainer.hyper_inputs(0)
    return {phase.name: set(jax.eval_shape(trainer.phase_fns[phase.name], state, real, c, c, hyper=hyper)[1])
            for phase in trainer._phases_run(0)}


def test_rotation_terms_belong_to_the_main_phases_of_lazy_regularisation():
    trainer = Trainer(*_sg2(), _loss(ON, pl_weight=2.0, g_reg_interval=2, d_reg_interval=2), OPTIM, BATCH, _mesh(8))
    names = _phase_metric_names(trainer)
    assert "loss/rotation_fake" in names["Gmain"] and "loss/rotation_real" in names["Dmain"]
    assert not any("rotation" in name for phase in ("Greg", "Dreg") for name in names[phase])
    # R1 does not reach the rotation head, so Adam skips it there (torch: its .grad is None).
    real = trainer.shard_batch(_images())
    c = trainer.shard_batch(np.zeros((BATCH, 0), np.float32))
    steps = {name: trainer.phase_fns[name](trainer.init_state(0), real, c, c)[0].d_opt.step
             for name in ("Dmain", "Dreg")}
    assert int(steps["Dmain"]["rotation"]["weight"]) == 1 and int(steps["Dreg"]["rotation"]["weight"]) == 0
    assert int(steps["Dreg"]["b8"]["conv0"]["weight"]) == 1


def test_the_2019_networks_train_with_the_rotation_loss():
    G = stylegan2019.Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=8, img_channels=3, channel_base=64,
                               channel_max=16, mapping_kwargs={"num_layers": 2})
    D = stylegan2019.Discriminator(c_dim=0, img_resolution=8, img_channels=3, channel_base=64, channel_max=16,
                                   rotation_classes=4)
    names = _phase_metric_names(Trainer(G, D, _loss(ON), OPTIM, BATCH, _mesh(8)))
    assert {"loss/rotation_fake", "rotation/accuracy_fake"} <= names["Gboth"]
    assert {"loss/rotation_real", "rotation/accuracy_real", "loss/r1_penalty"} <= names["Dboth"]


def _tiny_config(arch="stylegan2"):
    c = config_lib.default_config()
    c.model.arch = arch
    c.batch_size = BATCH
    c.dataset.source, c.dataset.resolution = "digits", 16
    c.model.z_dim = c.model.w_dim = 16
    c.loss.rotation.alpha, c.loss.rotation.beta = 0.2, 1.0
    if arch == "r3gan":
        c.model.r3gan.update(dict(widths=(16, 16, 8), cardinalities=(2, 2, 1), blocks=(1, 1, 1), fp16_stages=()))
    return c


def test_r3gan_takes_the_rotation_loss_from_its_config():
    config = _tiny_config("r3gan")
    config_lib.validate_config(config, 8)
    g_spec, d_spec = config_lib.network_specs(config, 0, 3)
    assert d_spec[1]["rotation_classes"] == 4 and "rotation_classes" not in g_spec[1]
    trainer = loop.make_trainer(config, build_network(*g_spec), build_network(*d_spec), _mesh(8))
    assert trainer.rotation == RotationConfig(alpha=0.2, beta=1.0)
    names = _phase_metric_names(trainer)
    assert {"loss/rotation_real", "loss/r1_penalty", "loss/r2_penalty"} <= names["D"]
    assert "loss/rotation_fake" in names["G"]


# ---- the config ---------------------------------------------------------------------------------------
def test_the_option_is_off_by_default_and_adds_the_head_to_every_discriminator_when_on():
    default = config_lib.default_config()
    assert LossConfig(**default.loss).rotation == RotationConfig()
    assert "rotation_classes" not in config_lib.network_specs(default, 0, 3)[1][1]
    for arch in ("stylegan", "stylegan2", "stylegan3-t", "r3gan"):
        config = _tiny_config(arch)
        assert config_lib.network_specs(config, 0, 3)[1][1]["rotation_classes"] == 4, arch
    config = _tiny_config()
    config.loss.rotation.examples = 2
    assert LossConfig(**config.loss).rotation == RotationConfig(alpha=0.2, beta=1.0, examples=2)
    with pytest.raises(ValueError, match="rotation_classes=4"):
        Trainer(*_sg2(rotation_classes=0), _loss(ON), OPTIM, BATCH, _mesh(1))


@pytest.mark.parametrize("key, value, message", [
    ("alpha", -0.1, "config.loss.rotation.alpha must be >= 0"),
    ("beta", 0.0, "config.loss.rotation.beta must be positive when loss.rotation.alpha is"),
    ("examples", BATCH + 1, "config.loss.rotation.examples must be between 0"),
    ("examples", -1, "config.loss.rotation.examples must be between 0"),
])
def test_bad_rotation_settings_fail_in_one_line_naming_the_key(key, value, message):
    config = _tiny_config()
    config.loss.rotation[key] = value
    with pytest.raises(ValueError, match=message) as error:
        config_lib.validate_config(config, 8)
    assert "\n" not in str(error.value)


def test_non_square_images_are_refused_with_the_rotation_loss():
    config = _tiny_config()
    config.dataset.resolution = (16, 32)
    with pytest.raises(ValueError, match=r"config.loss.rotation needs a square dataset.resolution .*, got \(16, 32\)$"):
        config_lib.validate_config(config, 8)
    config.loss.rotation.alpha = config.loss.rotation.beta = 0.0
    config_lib.validate_config(config, 8)


def test_resuming_keeps_their_weights_and_gives_a_missing_head_a_fresh_start():
    head = {"weight": np.ones((4, 2))}
    theirs = {"params": {"b4": {"w": np.zeros(2)}}, "buffers": {}}
    ours = {"params": {"b4": {"w": np.ones(2)}, "rotation": head}, "buffers": {}}
    matched = loop._matching_rotation_head(theirs, ours)
    assert matched["params"]["rotation"] is head and matched["params"]["b4"] is theirs["params"]["b4"]
    assert "rotation" not in loop._matching_rotation_head(ours, theirs)["params"]


# ---- learning the rotations of real digits --------------------------------------------------------
@pytest.mark.slow
def test_the_head_learns_the_rotations_of_real_digits():
    """200 iterations on scikit-learn's 8x8 digits: the head's accuracy on 256 held-out digits (4 turns
    each) rises from about chance (25%) to well above it (about 68% when written)."""
    from sklearn.datasets import load_digits

    digits = np.round(load_digits().images * (255 / 16)).astype(np.uint8)[..., None]
    train, held_out = digits[:1500], digits[1500:1756]
    batch = 32
    optim = OptimizerConfig(**{**config_lib.default_config().optimizer, "g_lr": 0.004, "d_lr": 0.004})
    trainer = Trainer(*_sg2(channels=1), _loss(ON, r1_gamma=0.0), optim, batch, _mesh(1))
    rotated, labels = rotated_copies(to_float_images(jnp.asarray(held_out)))
    no_labels = jnp.zeros((rotated.shape[0], 0))
    held_out_accuracy = jax.jit(lambda d: accuracy(trainer.D.apply(d, rotated, no_labels, rotation=True)[1], labels))
    state = trainer.init_state(0)
    c = trainer.shard_batch(np.zeros((batch, 0), np.float32))
    rng = np.random.default_rng(0)
    curve = [float(held_out_accuracy(state.d))]
    for step in range(200):
        real = trainer.shard_batch(train[rng.integers(0, len(train), batch)])
        state, _ = trainer.train_step(state, step, step * batch, real, c, (c, c), ema_kimg=0.1, ema_rampup=None)
        if step % 50 == 49:
            curve.append(float(held_out_accuracy(state.d)))
    print("held-out rotation accuracy every 50 iterations:", [f"{a:.3f}" for a in curve])
    assert curve[-1] > 0.5 and curve[-1] > curve[0] + 0.2, curve


@pytest.mark.slow
def test_an_r3gan_iteration_with_the_rotation_loss_trains_the_head():
    config = _tiny_config("r3gan")
    g_spec, d_spec = config_lib.network_specs(config, 0, 3)
    trainer = loop.make_trainer(config, build_network(*g_spec), build_network(*d_spec), _mesh(8))
    state = trainer.init_state(0)
    head = jax.device_get(state.d["params"]["rotation"]["weight"])
    real = trainer.shard_batch(np.random.default_rng(0).integers(0, 256, (BATCH, 16, 16, 3), dtype=np.uint8))
    c = trainer.shard_batch(np.zeros((BATCH, 0), np.float32))
    state, metrics = trainer.train_step(state, 0, 0, (real, real), (c, c), (c, c), ema_kimg=0.0, ema_rampup=None)
    metrics = jax.device_get(metrics)
    assert metrics["finite/D"] and metrics["finite/G"]
    assert 0.5 < metrics["loss/rotation_real"] < 3.0 and 0.5 < metrics["loss/rotation_fake"] < 3.0
    assert not np.array_equal(jax.device_get(state.d["params"]["rotation"]["weight"]), head)
