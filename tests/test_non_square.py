"""Non-square images: (height, width) networks, data fitted to the aspect, transfer from square weights, training."""
import jax
import jax.numpy as jnp
import numpy as np
import PIL.Image
import pytest

import tiny_config
from conftest import relative_error
from stylegan_jax import checkpoint
from stylegan_jax.convert.state_dict import build_network, from_official_state_dict, to_official_state_dict
from stylegan_jax.data import DatasetConfigError, iterate_images
from stylegan_jax.data.decoding import to_training_array
from stylegan_jax.images import aspect_factors, image_size
from stylegan_jax.networks import discriminator, r3gan, stylegan2, stylegan3
from stylegan_jax.tree_shapes import leaf_shapes

SG2_G = dict(z_dim=8, c_dim=0, w_dim=8, img_channels=3, channel_base=128, channel_max=16, num_fp16_res=0,
             mapping_kwargs={"num_layers": 2})
SG2_D = dict(c_dim=0, img_channels=3, channel_base=128, channel_max=16, num_fp16_res=0)
R3GAN_G = dict(NoiseDimension=8, WidthPerStage=[16, 16, 8], CardinalityPerStage=[2, 2, 2], BlocksPerStage=[1, 1, 1],
               ExpansionFactor=2, FP16Stages=[], c_dim=0)
R3GAN_D = dict(WidthPerStage=[8, 16, 16], CardinalityPerStage=[2, 2, 2], BlocksPerStage=[1, 1, 1],
               ExpansionFactor=2, FP16Stages=[], c_dim=0)
SG3_G = dict(z_dim=8, c_dim=0, w_dim=8, img_channels=3, channel_base=512, channel_max=32, num_layers=6,
             num_fp16_res=0, mapping_kwargs={"num_layers": 2})


def _init(module, *inputs, seed=0):
    return jax.jit(module.init)({"params": jax.random.PRNGKey(seed)}, *inputs)


def _shapes(module, *inputs):
    return leaf_shapes(jax.eval_shape(module.init, {"params": jax.random.PRNGKey(0)}, *inputs))


def _apply(module, variables, *inputs):
    return jax.jit(module.apply)(variables, *inputs)


def _z(n=2, dim=8):
    return jax.random.normal(jax.random.PRNGKey(7), (n, dim))


def test_resolutions_parse_as_height_and_width():
    assert image_size(16) == (16, 16) and image_size("32x64") == (32, 64) and image_size([64, 32]) == (64, 32)
    assert image_size("128") == (128, 128) and aspect_factors((32, 128)) == (1, 4) and aspect_factors(8) == (1, 1)
    for bad in (48, "32x48", (2, 4), "wide", (16, 16, 16), 7.5):
        with pytest.raises(ValueError, match="must"):
            image_size(bad)


@pytest.mark.parametrize("resolution, architecture", [((16, 32), "skip"), ((32, 16), "resnet"), ((16, 32), "orig")])
def test_stylegan2_networks_take_the_aspect_and_keep_the_square_names(resolution, architecture):
    G = stylegan2.Generator(img_resolution=resolution, architecture=architecture, **SG2_G)
    D = discriminator.Discriminator(img_resolution=resolution, architecture=architecture, **SG2_D)
    g_vars = _init(G, _z(), None)
    images = _apply(G, g_vars, _z(), None)
    d_vars = _init(D, *D.example_inputs(2))
    assert images.shape == (2, *resolution, 3) and _apply(D, d_vars, images).shape == (2, 1)
    # The names are those of the square network of the shorter side; only the 4x4 stage's input-sized
    # tensors and the noise images change shape.
    square_g = _shapes(stylegan2.Generator(img_resolution=16, architecture=architecture, **SG2_G), _z(), None)
    square_d = _shapes(discriminator.Discriminator(img_resolution=16, architecture=architecture, **SG2_D),
                       jnp.zeros((2, 16, 16, 3)))
    ours_g, ours_d = leaf_shapes(g_vars), leaf_shapes(d_vars)
    assert ours_g.keys() == square_g.keys() and ours_d.keys() == square_d.keys()
    differ_g = {k for k in ours_g if ours_g[k] != square_g[k]}
    assert {k for k in differ_g if "noise_const" not in k} == {"['params']['synthesis']['b4']['const']"}
    assert ours_g["['params']['synthesis']['b4']['const']"] == (16, *(np.array(resolution) // 4))
    assert ours_g["['buffers']['synthesis']['b16']['conv1']['noise_const']"] == resolution
    assert {k for k in ours_d if ours_d[k] != square_d[k]} == {"['params']['b4']['fc']['weight']"}
    with pytest.raises(ValueError, match=r"images must be NHWC of shape \[N, " + f"{resolution[0]}, {resolution[1]}"):
        _apply(D, d_vars, jnp.zeros((2, 16, 16, 3)))


@pytest.mark.parametrize("resolution", [(16, 32), (32, 16)])
def test_r3gan_bases_take_the_aspect(resolution):
    G, D = r3gan.Generator(img_resolution=resolution, **R3GAN_G), r3gan.Discriminator(img_resolution=resolution, **R3GAN_D)
    g_vars, d_vars = _init(G, *G.example_inputs(2)), _init(D, *D.example_inputs(2))
    images = _apply(G, g_vars, _z())
    assert images.shape == (2, *resolution, 3) and _apply(D, d_vars, images).shape == (2,)
    square_g = _shapes(r3gan.Generator(img_resolution=16, **R3GAN_G), _z(), None)
    square_d = _shapes(r3gan.Discriminator(img_resolution=16, **R3GAN_D), jnp.zeros((2, 16, 16, 3)), None)
    ours_g, ours_d = leaf_shapes(g_vars), leaf_shapes(d_vars)
    basis = (*np.array(resolution) // 4,)
    assert {k: v for k, v in ours_g.items() if v != square_g[k]} == {
        "['params']['Model']['MainLayers.0']['Layers.0']['Basis']": (16, *basis)}
    assert {k: v for k, v in ours_d.items() if v != square_d[k]} == {
        "['params']['Model']['MainLayers.2']['Layers.1']['Basis']['weight']": (16, 1, *basis)}


def test_a_square_pair_is_the_square_network_bit_for_bit():
    for module, kwargs, inputs in ((stylegan2.Generator, SG2_G, (_z(), None)),
                                   (stylegan3.Generator, SG3_G, (_z(), None)),
                                   (discriminator.Discriminator, SG2_D, (jnp.ones((2, 16, 16, 3)),)),
                                   (r3gan.Generator, R3GAN_G, (_z(), None))):
        square, pair = module(img_resolution=16, **kwargs), module(img_resolution=(16, 16), **kwargs)
        variables = _init(square, *inputs)
        assert _shapes(pair, *inputs) == leaf_shapes(variables)
        np.testing.assert_array_equal(_apply(pair, variables, *inputs), _apply(square, variables, *inputs))


@pytest.mark.parametrize("radial", [False, True], ids=["T", "R"])
def test_stylegan3_wide_canvas_continues_the_square_image(radial):
    """The shorter side is the unit length: a 1:2 canvas samples the same continuous signal over twice the width,
    so its centre equals the square image up to the square network's own border effects."""
    square = stylegan3.Generator(img_resolution=32, use_radial_filters=radial, **SG3_G)
    variables = _init(square, _z(4), None)
    reference = _apply(square, variables, _z(4), None)
    for resolution in ((32, 64), (64, 32)):
        wide = stylegan3.Generator(img_resolution=resolution, use_radial_filters=radial, **SG3_G)
        assert _shapes(wide, _z(4), None) == leaf_shapes(variables)  # same names and shapes
        images = _apply(wide, variables, _z(4), None)
        assert images.shape == (4, *resolution, 3)
        top, left = (resolution[0] - 32) // 2, (resolution[1] - 32) // 2
        centre = images[:, top:top + 32, left:left + 32]
        # Measured 7e-5 to 1.2e-4 over the whole crop, 2e-6 to 5e-6 four pixels in from its edges.
        assert relative_error(centre, reference) < 5e-4
        assert relative_error(centre[:, 4:-4, 4:-4], reference[:, 4:-4, 4:-4]) < 2e-5
        outside = np.array(images)
        outside[:, top:top + 32, left:left + 32] = np.nan
        assert np.nanstd(outside) > 0.3 * float(np.std(reference))  # the signal goes on beyond the square


@pytest.mark.parametrize("class_name, kwargs", [
    ("training.networks_stylegan2.Generator", SG2_G),
    ("training.networks_stylegan3.Generator", SG3_G),
    ("training.networks_stylegan2.Discriminator", SG2_D),
])
def test_official_state_dicts_build_non_square_networks_from_a_height_width_pair(class_name, kwargs):
    built = build_network(class_name, {**kwargs, "img_resolution": [32, 64]})
    inputs = (jnp.ones((2, 32, 64, 3)),) if "Discriminator" in class_name else (_z(), None)
    variables = _init(built, *inputs, seed=3)
    module, loaded = from_official_state_dict(class_name, {**kwargs, "img_resolution": [32, 64]},
                                              to_official_state_dict(built, variables))
    assert module.img_resolution == (32, 64)
    np.testing.assert_array_equal(_apply(module, loaded, *inputs), _apply(built, variables, *inputs))
    with pytest.raises(ValueError, match=r"img_resolution: must have sides that are powers of two"):
        build_network(class_name, {**kwargs, "img_resolution": [32, 48]})


def _photo(path, width, height):
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :, 0] = np.linspace(0, 255, width, dtype=np.uint8)[None]  # a red ramp from left to right
    image[height // 4:3 * height // 4, width // 4:3 * width // 4, 1] = 255  # a green centre
    PIL.Image.fromarray(image).save(path)
    return PIL.Image.open(path)


def test_images_are_cropped_or_letterboxed_to_the_aspect(tmp_path):
    square = _photo(tmp_path / "square.png", 64, 64)
    cropped = to_training_array(square, (16, 32), 3, "crop")  # the middle half of the rows, all columns
    assert cropped.shape == (16, 32, 3) and cropped[:, 10:22, 1].min() > 200 and cropped[:, :6, 1].max() < 30
    assert cropped[:, 0, 0].max() < 20 and cropped[:, -1, 0].min() > 235  # the whole ramp
    boxed = to_training_array(square, (16, 32), 3, "letterbox")  # the whole image in the middle 16x16
    assert boxed.shape == (16, 32, 3) and boxed[:, :8].max() == 0 and boxed[:, 24:].max() == 0
    assert boxed[:, 8:24, 0].max() > 200 and boxed[:2, 8:24, 1].max() < 30  # the green centre's margin is kept
    tall = to_training_array(_photo(tmp_path / "wide.png", 64, 32), (32, 16), 1, "crop")
    assert tall.shape == (32, 16, 1)
    # The square crop of a non-square photo is the official one.
    wide = _photo(tmp_path / "w.png", 48, 32)
    expected = np.asarray(wide.convert("RGB").crop((8, 0, 40, 32)).resize((16, 16), PIL.Image.LANCZOS))
    np.testing.assert_array_equal(to_training_array(wide, 16, 3), expected)


def test_a_folder_of_images_smaller_than_the_resolution_fails_at_start_up(tmp_path):
    for i in range(3):
        _photo(tmp_path / f"{i}.png", 64 if i else 40, 32)
    config = dict(source="folder", path=str(tmp_path), resolution="32x64")
    # Letterboxed, the 40x32 image needs no enlarging (it keeps its height); cropped to 1:2 it is 40x20.
    batch = next(iterate_images({**config, "fit": "letterbox"}, 3))["image"]
    assert batch.shape == (3, 32, 64, 3) and batch[0, :, :12].max() == 0
    with pytest.raises(DatasetConfigError, match=r"dataset.resolution: 1 of 3 images are smaller than 32x64 .*0.png "
                                                 r"\(40x32 wide x high\)"):
        next(iterate_images(config, 3))
    with pytest.raises(DatasetConfigError, match=r"dataset.resolution: 3 of 3 images are smaller than 64x64"):
        next(iterate_images({**config, "resolution": 64}, 3))


@pytest.mark.slow
def test_training_from_square_weights_checkpoints_and_restores_at_16x32(tmp_path):
    """Sharded steps on 8 devices at 16x32, initialised from a square official pickle, checkpointed and restored."""
    import official_pickle_writer as writer

    from stylegan_jax.training.config import network_specs
    from stylegan_jax.training.loop import make_trainer, train_and_evaluate

    square = tiny_config.get_config()
    (g_class, g_kwargs), (d_class, d_kwargs) = network_specs(square, 0, 3)
    source = make_trainer(square, build_network(g_class, g_kwargs), build_network(d_class, d_kwargs)).init_state(5)
    nets = {key: writer.network_record(cls, kwargs, to_official_state_dict(None, variables))
            for key, cls, kwargs, variables in (("G", g_class, g_kwargs, source.g), ("D", d_class, d_kwargs, source.d),
                                                ("G_ema", g_class, g_kwargs, source.g_ema))}
    pkl = tmp_path / "square.pkl"
    with open(pkl, "wb") as f:
        writer.dump({**nets, "augment_pipe": None, "training_set_kwargs": None}, f)

    config = tiny_config.get_config()
    config.dataset.resolution = "16x32"
    config.dataset.fit = "letterbox"
    config.total_kimg = 0.032  # 4 iterations, a checkpoint every 2
    config.resume = str(pkl)
    run = tmp_path / "run"
    state = train_and_evaluate(config, str(run))
    log = (run / "log.txt").read_text()
    assert "Dataset: digits: 1797 images, 16x32" in log
    reinitialised = log.split("keep their fresh initialisation (theirs -> ours): ")[1].splitlines()[0]
    assert "G ['params']['synthesis']['b4']['const'] (16, 4, 4) -> (16, 4, 8)" in reinitialised
    assert "D ['params']['b4']['fc']['weight'] (16, 256) -> (16, 512)" in reinitialised
    assert "['b8']['conv0']['weight']" not in reinitialised
    assert int(state.step) == 4 and state.g["params"]["synthesis"]["b4"]["const"].shape == (16, 4, 8)
    grid = np.asarray(PIL.Image.open(sorted(run.glob("fakes_kimg*.png"))[-1]))
    cols, rows = config.grid_size
    assert grid.shape[:2] == (rows * 16, cols * 32)
    assert np.asarray(PIL.Image.open(run / "reals.png")).shape[:2] == (rows * 16, cols * 32)

    # The checkpoint restores into a fresh 16x32 state exactly (the path a resumed run takes).
    (g_class, g_kwargs), (d_class, d_kwargs) = network_specs(config, 0, 3)
    assert g_kwargs["img_resolution"] == d_kwargs["img_resolution"] == [16, 32]
    trainer = make_trainer(config, build_network(g_class, g_kwargs), build_network(d_class, d_kwargs))
    restored, meta = checkpoint.restore(checkpoint.open_manager(str(run), read_only=True),
                                        trainer.init_state(config.seed), trainer.replicated)
    assert meta["step"] == 4 and meta["dataset"]["resolution"] == [16, 32]
    for got, want in zip(jax.tree_util.tree_leaves(restored), jax.tree_util.tree_leaves(state)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.slow
def test_stylegan3_r_trains_sharded_steps_at_32x16():
    from jax.sharding import Mesh

    from stylegan_jax.training.config import default_config
    from stylegan_jax.training.trainer import LossConfig, OptimizerConfig, Trainer

    G = stylegan3.Generator(img_resolution=(32, 16), use_radial_filters=True, conv_kernel=1,
                            **{**SG3_G, "num_layers": 4})
    D = discriminator.Discriminator(img_resolution=(32, 16), **SG2_D)
    loss = LossConfig(**{**default_config().loss, **dict(r1_gamma=1.0, pl_weight=0.0, d_reg_interval=2,
                                                        g_reg_interval=None)})
    trainer = Trainer(G, D, loss, OptimizerConfig(**default_config().optimizer), 8,
                      Mesh(np.array(jax.devices()), ("data",)))
    state = trainer.init_state(0)
    labels = trainer.shard_batch(np.zeros((8, 0), np.float32))
    images = np.random.default_rng(0).integers(0, 256, (2, 8, 32, 16, 3), dtype=np.uint8)
    for step, batch in enumerate(images):
        state, metrics = trainer.train_step(state, step, step * 8, trainer.shard_batch(batch), labels,
                                            (labels,) * len(trainer.phases), ema_kimg=0.1, ema_rampup=0.05)
    assert int(state.step) == 2 and int(state.skipped) == 0 and np.isfinite(float(metrics["loss/D"]))
    moved = [not np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(state.g["params"]),
                                                        jax.tree_util.tree_leaves(trainer.init_state(0).g["params"]))]
    assert sum(moved) > len(moved) // 2


def test_equivariance_operators_use_the_shorter_side_as_the_unit():
    """EQ-T shifts by fractions of the shorter side (the generator's unit length) and EQ-R rotates about the
    centre in square pixels: on a 32x64 image both act on the centre like on the centre's 32x32 square."""
    from stylegan_jax.eval.equivariance import affine_transformation, integer_translation, rotation_matrix

    rng = np.random.default_rng(0)
    kernel = np.outer(np.hanning(7), np.hanning(7))
    smooth = jax.scipy.signal.convolve(jnp.asarray(rng.standard_normal((32, 64)), jnp.float32),
                                       jnp.asarray(kernel / kernel.sum(), jnp.float32), mode="same")
    wide = smooth[None, :, :, None]
    shifted, mask = integer_translation(wide, 0.125, -0.0625)  # 4 pixels right, 2 up
    np.testing.assert_array_equal(shifted[:, :-2, 4:], wide[:, 2:, :-4])
    assert float(mask.sum()) == 30 * 60
    for angle in (0.3, -1.0):
        rotated, _ = affine_transformation(wide, rotation_matrix(angle), a=3, amax=6)
        square, _ = affine_transformation(wide[:, :, 16:48], rotation_matrix(angle), a=3, amax=6)
        # Measured 7.8e-7 on the middle 16x16.
        assert relative_error(rotated[:, 8:24, 24:40], square[:, 8:24, 8:24]) < 1e-5
