"""Interpolation videos and rows: the paths pass through the seeds' own images."""
import numpy as np
import pytest

from stylegan_jax.sampling import generate_images, interpolation_grid, video_frames
from test_sampling_nets import sg2


@pytest.mark.parametrize("kind", ["linear", "slerp"])
def test_interpolation_rows_run_from_seed_to_seed(kind):
    G, variables = sg2()
    grid = interpolation_grid(G, variables, [3, 4, 5], steps=4, kind=kind, truncation_psi=0.7)
    res = G.img_resolution
    assert grid.shape == (2 * res, 4 * res, 3)
    ends = generate_images(G, variables, [3, 4, 5], truncation_psi=0.7)
    cell = lambda row, col: grid[row * res:(row + 1) * res, col * res:(col + 1) * res]
    for row in range(2):
        np.testing.assert_array_equal(cell(row, 0), ends[row])
        np.testing.assert_array_equal(cell(row, 3), ends[row + 1])
        assert not np.array_equal(cell(row, 1), ends[row])


@pytest.mark.parametrize("kind", ["cubic", "linear", "slerp"])
def test_video_loops_through_the_keyframes(kind):
    G, variables = sg2()
    frames = list(video_frames(G, variables, [8, 9], w_frames=3, kind=kind))
    assert len(frames) == 6 and frames[0].shape == (16, 16, 3)
    keys = generate_images(G, variables, [8, 9])
    np.testing.assert_array_equal(frames[0], keys[0])
    np.testing.assert_array_equal(frames[3], keys[1])
    assert not np.array_equal(frames[1], frames[0])


def test_video_grid_cells_and_errors():
    G, variables = sg2()
    frames = list(video_frames(G, variables, [1, 2, 3, 4], grid=(2, 1), w_frames=2, shuffle_seed=None))
    assert len(frames) == 2 * 2 and frames[0].shape == (16, 32, 3)
    keys = generate_images(G, variables, [1, 3])  # cell 0 starts at seed 1, cell 1 at seed 3
    np.testing.assert_array_equal(frames[0][:, :16], keys[0])
    np.testing.assert_array_equal(frames[0][:, 16:], keys[1])
    with pytest.raises(ValueError, match="divide evenly"):
        video_frames(G, variables, [1, 2, 3], grid=(2, 1))
    with pytest.raises(ValueError, match="kind"):
        list(video_frames(G, variables, [1, 2], kind="bezier"))
