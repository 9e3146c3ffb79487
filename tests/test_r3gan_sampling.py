"""R3GAN generators in the sampling tools and metrics: generate, video, project and evaluate take them (in Z),
and the tools that need a w space refuse them in one line."""
import jax
import jax.numpy as jnp
import numpy as np
import PIL.Image
import pytest

from stylegan_jax import generate as generate_cli
from stylegan_jax import project as project_cli
from stylegan_jax import style_mix as style_mix_cli
from stylegan_jax import video as video_cli
from stylegan_jax.convert.state_dict import build_network
from stylegan_jax.eval.inputs import generator_source
from stylegan_jax.images import to_uint8
from stylegan_jax.sampling import export_generator, generate_images
from stylegan_jax.sampling.interpolation import interpolation_grid, video_frames
from stylegan_jax.sampling.latents import seeds_to_z
from stylegan_jax.sampling.projection import project

CLASSES = 3


def _r3gan(c_dim: int = 0):
    kwargs = dict(NoiseDimension=8, WidthPerStage=[16, 8, 8], CardinalityPerStage=[2, 1, 1], BlocksPerStage=[1, 1, 1],
                  ExpansionFactor=2, FP16Stages=[], c_dim=c_dim, img_resolution=16,
                  ConditionEmbeddingDimension=8 if c_dim else 0)
    G = build_network("training.networks.Generator", kwargs)
    variables = G.init(jax.random.key(1), *G.example_inputs())
    # Non-zero residual branches (the official init zeroes their last convs), so that z shapes the image.
    leaves, tree = jax.tree_util.tree_flatten(variables)
    leaves = [x if jnp.any(x != 0) else 0.1 * jax.random.normal(jax.random.key(i), x.shape)
              for i, x in enumerate(leaves)]
    return G, jax.tree_util.tree_unflatten(tree, leaves)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = tmp_path_factory.mktemp("r3gan") / "g.msgpack"
    export_generator(path, *_r3gan())
    return str(path)


def _direct(G, variables, z, c=None):
    c = np.zeros((len(z), G.c_dim), np.float32) if c is None else c
    return np.asarray(to_uint8(G.apply(variables, jnp.asarray(z), jnp.asarray(c))))


def test_generate_renders_seeds_through_z(exported, tmp_path):
    out = tmp_path / "out"
    assert generate_cli.main([f"--network={exported}", "--seeds=0-2", f"--outdir={out}", "--grid"]) == 0
    expected = _direct(*_r3gan(), seeds_to_z([0, 1, 2], 8))
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(out / "seed0002.png")), expected[2])
    assert len(np.unique(expected.reshape(3, -1), axis=0)) == 3


def test_conditional_generation_follows_the_class():
    G, variables = _r3gan(CLASSES)
    z = seeds_to_z([4], 8)
    for class_idx in range(CLASSES):
        labels = np.eye(CLASSES, dtype=np.float32)[[class_idx]]
        np.testing.assert_array_equal(generate_images(G, variables, [4], class_idx=class_idx),
                                      _direct(G, variables, z, labels))
    with pytest.raises(ValueError, match="a class index"):
        generate_images(G, variables, [4])


@pytest.mark.parametrize("argv, message", [
    (["--trunc=0.7"], "truncation (psi != 1) needs a generator with a w space"),
    (["--rotate=10"], "translate and rotate need a StyleGAN3 generator"),
])
def test_generate_refuses_what_needs_a_w_space_in_one_line(exported, tmp_path, capsys, argv, message):
    assert generate_cli.main([f"--network={exported}", "--seeds=0", f"--outdir={tmp_path}", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_style_mixing_is_refused_in_one_line(exported, tmp_path, capsys):
    assert style_mix_cli.main([f"--network={exported}", "--rows=1,2", "--cols=3", f"--outdir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "style mixing needs a generator with a w space" in err and err.count("\n") == 1


@pytest.mark.parametrize("kind", ["cubic", "linear", "slerp"])
def test_video_frames_pass_through_every_keyframe_in_z(kind):
    G, variables = _r3gan()
    frames = list(video_frames(G, variables, [3, 9], grid=(2, 1), num_keyframes=1, w_frames=2, kind=kind))
    keys = _direct(G, variables, seeds_to_z([3, 9], 8))
    np.testing.assert_array_equal(frames[0], np.concatenate(list(keys), axis=1))  # frame 0: the keyframes


def test_interpolation_rows_join_consecutive_seeds():
    G, variables = _r3gan()
    grid = interpolation_grid(G, variables, [3, 9, 11], steps=3, kind="slerp")
    ends = _direct(G, variables, seeds_to_z([3, 9, 11], 8))
    assert grid.shape == (2 * 16, 3 * 16, 3)
    np.testing.assert_array_equal(grid[:16, :16], ends[0])
    np.testing.assert_array_equal(grid[16:, 32:], ends[2])


def test_video_command_writes_a_video(exported, tmp_path):
    assert video_cli.main([f"--network={exported}", "--seeds=0-1", "--w-frames=2", f"--output={tmp_path / 'v.mp4'}",
                           "--kind=slerp"]) == 0
    assert [p for p in tmp_path.iterdir() if p.stem == "v" and p.stat().st_size > 0]


def test_projection_into_z_finds_a_generated_image():
    G, variables = _r3gan()
    target = _direct(G, variables, seeds_to_z([7], 8))[0]
    squared = lambda a, b: jnp.mean(jnp.square(a - b), axis=(1, 2, 3))
    result = project(G, variables, target, num_steps=60, w_avg_samples=200, distance_fn=squared)
    assert result.in_z and result.ws.shape == (1, 8) and result.ws_steps.shape == (60, 1, 8)
    assert result.distances[-1] < 0.2 * result.distances[0]
    np.testing.assert_array_equal(result.image, _direct(G, variables, result.ws)[0])
    with pytest.raises(ValueError, match="w_plus projection needs a generator with a w space"):
        project(G, variables, target, num_steps=1, w_plus=True, distance_fn=squared)


def test_project_command_saves_z_that_generate_renders(exported, tmp_path):
    G, variables = _r3gan()
    PIL.Image.fromarray(_direct(G, variables, seeds_to_z([5], 8))[0]).save(tmp_path / "photo.png")
    out = tmp_path / "out"
    assert project_cli.main([f"--network={exported}", f"--target={tmp_path / 'photo.png'}", f"--outdir={out}",
                             "--num-steps=2", "--w-avg-samples=50"]) == 0
    with np.load(out / "projected_w.npz") as data:
        assert "w" not in data.files and data["z"].shape == (1, 1, 8)
        z = data["z"][:, 0]
    assert generate_cli.main([f"--network={exported}", f"--projected-w={out / 'projected_w.npz'}",
                              f"--outdir={tmp_path / 'again'}"]) == 0
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(tmp_path / "again" / "proj00.png")),
                                  _direct(G, variables, z)[0])


def test_metrics_get_a_generator_without_w_callables():
    G, variables = _r3gan()
    source = generator_source(G, variables, batch_size=8)
    z = seeds_to_z([1, 2], 8)
    images = np.asarray(source.generate(z, np.zeros((2, 0), np.float32)))
    np.testing.assert_allclose(images, np.asarray(G.apply(variables, z, np.zeros((2, 0), np.float32))), rtol=1e-5,
                               atol=1e-5)
    assert source.mapping is None and source.synthesis is None and source.render is None
