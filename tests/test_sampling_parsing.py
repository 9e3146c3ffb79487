"""Sampling helpers that need no network: argument parsing, seeds, labels, transforms, paths, images, video."""
import numpy as np
import PIL.Image
import pytest

from stylegan_jax.images import grid_shape, save_seed_images
from stylegan_jax.sampling import interpolation, video_io
from stylegan_jax.sampling.latents import class_labels, seeds_to_z
from stylegan_jax.sampling.parsing import MAX_SEED, parse_grid, parse_range, parse_seeds, parse_vec2
from stylegan_jax.sampling.projection import load_target
from stylegan_jax.sampling.render import input_transform
from stylegan_jax.sampling.style_mixing import mix_ws, parse_styles, style_ranges


def test_parse_range_like_the_official_scripts():
    assert parse_range("0-3,7") == [0, 1, 2, 3, 7]
    assert parse_range("5") == [5]
    assert parse_range("1,2,5-7") == [1, 2, 5, 6, 7]
    assert parse_range([3, 1]) == [3, 1]


@pytest.mark.parametrize("text, message", [("", "cannot parse"), ("a", "cannot parse"), ("1,,2", "cannot parse"),
                                           ("5-3", "empty"), ("-1", "cannot parse"), ("1.5", "cannot parse")])
def test_parse_range_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_range(text)


def test_seeds_must_fit_randomstate():
    assert parse_seeds(f"0,{MAX_SEED}") == [0, 2 ** 32 - 1]
    with pytest.raises(ValueError, match="out of range"):
        parse_seeds(str(2 ** 32))


def test_seeds_to_z_matches_official_rule():
    z = seeds_to_z([0, 7, MAX_SEED], 5)
    assert z.dtype == np.float32 and z.shape == (3, 5)
    for row, seed in zip(z, [0, 7, MAX_SEED]):
        np.testing.assert_array_equal(row, np.random.RandomState(seed).randn(1, 5)[0].astype(np.float32))


def test_parse_vec2_and_grid():
    assert parse_vec2("0.3,1") == (0.3, 1.0)
    assert parse_grid("4x3") == (4, 3) and parse_grid("2,5") == (2, 5)
    for bad in ("1", "a,b", "1,2,3"):
        with pytest.raises(ValueError):
            parse_vec2(bad)
    for bad in ("4", "0x2", "ax3"):
        with pytest.raises(ValueError):
            parse_grid(bad)


def test_class_labels():
    np.testing.assert_array_equal(class_labels(3, 1, 2), [[0, 1, 0], [0, 1, 0]])
    assert class_labels(0, None, 4).shape == (4, 0)
    with pytest.raises(ValueError, match="unconditional"):
        class_labels(0, 1, 1)
    with pytest.raises(ValueError, match="conditional"):
        class_labels(3, None, 1)
    with pytest.raises(ValueError, match="out of range"):
        class_labels(3, 3, 1)


def test_input_transform_is_the_inverse_of_the_user_transform():
    angle = np.deg2rad(30)
    user = np.array([[np.cos(angle), np.sin(angle), 0.25], [-np.sin(angle), np.cos(angle), -0.5], [0, 0, 1]])
    np.testing.assert_allclose(input_transform((0.25, -0.5), 30) @ user, np.eye(3), atol=1e-6)
    np.testing.assert_array_equal(input_transform(), np.eye(3))


def test_style_ranges_and_parse_styles():
    assert style_ranges(18) == {"coarse": [0, 1, 2, 3], "middle": [4, 5, 6, 7], "fine": list(range(8, 18))}
    assert style_ranges(6) == {"coarse": [0, 1, 2, 3], "middle": [4, 5], "fine": []}
    assert parse_styles("0-6", 18) == list(range(7))
    assert parse_styles("coarse,fine", 10) == [0, 1, 2, 3, 8, 9]
    assert parse_styles("middle", 18, style_ranges(18, 2, 5)) == [2, 3, 4]
    with pytest.raises(ValueError, match="out of range"):
        parse_styles("0-6", 6)


def test_mix_ws_takes_col_styles_from_the_columns():
    rows, cols = np.random.rand(2, 5, 3), np.random.rand(3, 5, 3)
    mixed = mix_ws(rows, cols, [0, 2])
    assert mixed.shape == (2, 3, 5, 3)
    for r in range(2):
        for c in range(3):
            np.testing.assert_array_equal(mixed[r, c, [0, 2]], cols[c, [0, 2]])
            np.testing.assert_array_equal(mixed[r, c, [1, 3, 4]], rows[r, [1, 3, 4]])


def test_lerp_and_slerp():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    np.testing.assert_allclose(interpolation.lerp(a, b, [0, 0.5, 1]), [[1, 0], [0.5, 1], [0, 2]])
    np.testing.assert_allclose(interpolation.slerp(a, b, [0, 1]), [a, b], atol=1e-12)
    unit = interpolation.slerp(a, b / 2, np.linspace(0, 1, 5))
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1)  # stays on the sphere
    np.testing.assert_allclose(np.diff(np.arctan2(unit[:, 1], unit[:, 0])), np.pi / 8)  # at constant speed


@pytest.mark.parametrize("kind", ["linear", "cubic", "slerp"])
def test_keyframe_path_loops_through_the_keys(kind):
    keys = np.random.RandomState(0).randn(3, 4)
    path = interpolation.keyframe_path(keys, 5, kind)
    assert path.shape == (15, 4)
    np.testing.assert_allclose(path[::5], keys, atol=1e-9)
    # The step from the last point back to the first is like the others: the path is closed.
    steps = np.linalg.norm(np.diff(np.concatenate([path, path[:1]]), axis=0), axis=1)
    assert steps.max() < 3 * np.median(steps)


def test_grid_shape():
    assert grid_shape(5) == (3, 2) and grid_shape(9) == (3, 3) and grid_shape(1) == (1, 1)
    assert grid_shape(5, 4) == (4, 2) and grid_shape(8, 8) == (8, 1)


def test_save_seed_images_names(tmp_path):
    paths = save_seed_images(tmp_path / "out", [3, 12345], np.zeros((2, 4, 4, 3), np.uint8))
    assert [p.name for p in paths] == ["seed0003.png", "seed12345.png"]
    assert np.asarray(PIL.Image.open(paths[0])).shape == (4, 4, 3)


def test_load_target_crops_the_centre_and_resizes(tmp_path):
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, 10:30] = 200  # the centre square
    PIL.Image.fromarray(image).save(tmp_path / "wide.png")
    target = load_target(tmp_path / "wide.png", 8)
    assert target.shape == (8, 8, 3) and target.dtype == np.uint8
    assert np.abs(target.astype(int) - 200).max() <= 2
    whole = load_target(tmp_path / "wide.png", (8, 16))  # a 1:2 generator takes the whole 1:2 image
    assert whole.shape == (8, 16, 3) and whole[:, 0].max() <= 2 and np.abs(whole[:, 8].astype(int) - 200).max() <= 2
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read image"):
        load_target(tmp_path / "bad.png", 8)
    with pytest.raises(ValueError, match="cannot read image"):
        load_target(tmp_path / "missing.png", 8)
    with pytest.raises(ValueError, match=r"is 40x20 \(width x height\): its centre crop is smaller than the generator's 32x32"):
        load_target(tmp_path / "wide.png", 32)


def test_write_video_gif(tmp_path):
    frames = [np.full((8, 8, 3), i * 20, np.uint8) for i in range(4)]
    path = video_io.write_video(tmp_path / "v.gif", iter(frames), fps=10)
    assert path.suffix == ".gif"
    with PIL.Image.open(path) as gif:
        assert gif.n_frames == 4


def test_write_video_mp4_or_gif_fallback(tmp_path):
    frames = [np.full((16, 16, 3), i * 20, np.uint8) for i in range(3)]
    path = video_io.write_video(tmp_path / "v.mp4", frames, fps=10)
    assert path.exists() and path.suffix == (".mp4" if video_io.can_write_mp4() else ".gif")
