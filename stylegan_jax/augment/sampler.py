"""Bilinear sampling (zeros outside, align_corners=False) of an affine grid, as weighted 2x2 patches."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_F32 = np.float32
_PATCHES = jax.lax.GatherDimensionNumbers(offset_dims=(2, 3, 4), collapsed_slice_dims=(), start_index_map=(0, 1))


def _grid_positions(theta: jax.Array, window: tuple[jax.Array, jax.Array], out_size: tuple[int, int]) -> jax.Array:
    """[B, Ho, Wo, 2] (x, y) sampling positions in window pixels (affine_grid, align_corners=False).

    The unnormalisation ((g + 1) * size - 1) / 2 is folded into theta so that the positions are the
    output of one product: XLA never recomputes a product inside several fusions, while it may repeat
    (and round differently, e.g. with or without FMA) a chain of elementwise operations.
    """
    out_h, out_w = out_size
    half = _F32(0.5)
    size = jnp.stack([window[1], window[0]]).astype(jnp.float32) * half  # (W, H) / 2
    theta = jnp.concatenate([theta[:, :, :2] * size[:, None], (theta[:, :, 2:] + _F32(1)) * size[:, None] - half], 2)
    # Pixel centres of the output grid in [-1, 1], homogeneous; broadcast at run time (no large constant).
    xn = np.asarray((2 * np.arange(out_w) + 1) / out_w - 1, np.float32)
    yn = np.asarray((2 * np.arange(out_h) + 1) / out_h - 1, np.float32)
    base = jnp.stack([jnp.broadcast_to(xn[None, :], out_size), jnp.broadcast_to(yn[:, None], out_size),
                      jnp.ones(out_size, jnp.float32)], -1)  # [Ho, Wo, 3]
    return jnp.einsum("hwk,bck->bhwc", base, theta, precision=jax.lax.Precision.HIGHEST)


def bilinear_patches(theta: jax.Array, window: tuple[jax.Array, jax.Array],
                     out_size: tuple[int, int]) -> tuple[jax.Array, jax.Array]:
    """Patch corners [B, Ho, Wo, 2] (row, col; int32 in [-1, size]) and weights [B, Ho, Wo, 2, 2] of the
    grid theta [B, 2, 3] (affine_grid, align_corners=False) over an image of `window` = (height, width)
    (traced ints); taps outside the image get weight zero."""
    positions = _grid_positions(theta, window, out_size)
    win_h, win_w = (n.astype(jnp.float32) for n in window)
    # Positions beyond -1 / size only need to stay outside: clipping keeps them there, with zero weights.
    ix = jnp.clip(positions[..., 0], -1, win_w)
    iy = jnp.clip(positions[..., 1], -1, win_h)
    x0, y0 = jnp.floor(ix), jnp.floor(iy)
    wx1, wy1 = ix - x0, iy - y0
    wx = (_F32(1) - wx1, wx1)
    wy = (_F32(1) - wy1, wy1)
    inside_x = [(x0 + dx >= 0) & (x0 + dx < win_w) for dx in (0, 1)]
    inside_y = [(y0 + dy >= 0) & (y0 + dy < win_h) for dy in (0, 1)]
    weights = jnp.stack([jnp.stack([jnp.where(inside_y[dy] & inside_x[dx], wy[dy] * wx[dx], _F32(0))
                                    for dx in (0, 1)], -1) for dy in (0, 1)], -2)
    return jnp.stack([y0, x0], -1).astype(jnp.int32), weights


def sample_patches(image: jax.Array, corners: jax.Array, weights: jax.Array) -> jax.Array:
    """sum_{dy, dx} weights[..., dy, dx] * image[b, row + dy, col + dx, :] for NHWC `image`, in-range corners."""
    channels = image.shape[-1]
    gather = lambda im, c: jax.lax.gather(  # noqa: E731
        im, c, _PATCHES, (2, 2, channels), mode=jax.lax.GatherScatterMode.PROMISE_IN_BOUNDS)
    patches = jax.vmap(gather)(image, corners)  # [B, Ho, Wo, 2, 2, C]
    w = weights[..., None]
    out = None
    for dy in (0, 1):
        for dx in (0, 1):
            term = w[..., dy, dx, :] * patches[..., dy, dx, :]
            out = term if out is None else out + term
    return out
