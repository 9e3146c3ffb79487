"""EQ-T (integer), EQ-T_frac and EQ-R of StyleGAN3 (Alias-Free GAN, appendix E): PSNR between the outputs
for transformed inputs and the transformed images, with the image operators on NHWC float images.

Each operator returns the transformed images and a mask of the pixels that hold valid data.
Translations are fractions of the image size; angles are in radians.
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.eval.inputs import latents_and_labels

# (z, c, transform [3, 3]) -> images NHWC in [-1, 1]; the transform is applied to the synthesis input
# (StyleGAN3's `synthesis.input.transform`); identity must reproduce the untransformed image.
Render = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
EQ_KINDS = ("int", "frac", "rot")


# The image operators.
def sinc(x: jax.Array) -> jax.Array:
    """Normalized sinc, sin(pi x) / (pi x), with sinc(0) = 1."""
    y = jnp.abs(x * np.pi)
    return jnp.where(y < 1e-30, jnp.ones_like(y), jnp.sin(y) / jnp.maximum(y, 1e-30))


def lanczos_window(x: jax.Array, a: float) -> jax.Array:
    """The Lanczos window sinc(x / a) on |x| < a, zero elsewhere."""
    x = jnp.abs(x) / a
    return jnp.where(x < 1, sinc(x), jnp.zeros_like(x))


def rotation_matrix(angle: jax.Array | float) -> jax.Array:
    """3x3 float32 matrix [[cos, sin, 0], [-sin, cos, 0], [0, 0, 1]]."""
    angle = jnp.asarray(angle, jnp.float32)
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    zero, one = jnp.zeros_like(angle), jnp.ones_like(angle)
    return jnp.stack([jnp.stack([cos, sin, zero]), jnp.stack([-sin, cos, zero]), jnp.stack([zero, zero, one])])


def _broadcast_axis(v: jax.Array, axis: int) -> jax.Array:
    shape = [1, 1, 1, 1]
    shape[axis] = v.shape[0]
    return v.reshape(shape)


def _axis_mask(size: int, lo: jax.Array, hi: jax.Array, axis: int) -> jax.Array:
    i = jnp.arange(size)
    return _broadcast_axis((i >= lo) & (i < hi), axis)


def integer_translation(x: jax.Array, tx: jax.Array | float, ty: jax.Array | float) -> tuple[jax.Array, jax.Array]:
    """Translates by (round(tx * S), round(ty * S)) pixels, S the shorter side (the unit length of a
    non-square canvas; W = H = S when square), filling with zeros (operator T_x of E.1)."""
    _, h, w, _ = x.shape
    ix = jnp.round(jnp.asarray(tx, jnp.float32) * min(h, w)).astype(jnp.int32)
    iy = jnp.round(jnp.asarray(ty, jnp.float32) * min(h, w)).astype(jnp.int32)
    mask = _axis_mask(h, iy, h + iy, 1) & _axis_mask(w, ix, w + ix, 2)
    shifted = jnp.roll(x, (iy, ix), axis=(1, 2))
    mask = jnp.broadcast_to(mask, x.shape).astype(x.dtype)
    return shifted * mask, mask


def _lanczos_shift(x: jax.Array, shift: jax.Array, axis: int, a: int) -> jax.Array:
    # out[j] = sum_u x[j - floor(shift) - u] * h(u - frac(shift)), u in [1 - a, a], x zero outside,
    # h(v) = sinc(v) sinc(v / a) normalized to unit sum: the official separable Lanczos filter.
    size = x.shape[axis]
    whole = jnp.floor(shift)
    frac = shift - whole
    taps = np.arange(2 * a) - (a - 1)
    v = taps.astype(np.float32) - frac
    h = sinc(v) * sinc(v / a)
    h = h / jnp.sum(h)
    j = jnp.arange(size)
    out = jnp.zeros_like(x)
    for k, u in enumerate(taps):
        src = j - whole.astype(jnp.int32) - int(u)
        valid = _broadcast_axis((src >= 0) & (src < size), axis)
        out = out + jnp.take(x, jnp.clip(src, 0, size - 1), axis=axis) * valid * h[k]
    return out


def fractional_translation(x: jax.Array, tx: jax.Array | float, ty: jax.Array | float,
                           a: int = 3) -> tuple[jax.Array, jax.Array]:
    """Translates by (tx * S, ty * S) pixels, S the shorter side, with a separable Lanczos-a filter (operator T_x of E.2)."""
    _, h, w, _ = x.shape
    sx = jnp.asarray(tx, jnp.float32) * min(h, w)
    sy = jnp.asarray(ty, jnp.float32) * min(h, w)
    z = _lanczos_shift(_lanczos_shift(x, sx, 2, a), sy, 1, a)
    ix, iy = jnp.floor(sx).astype(jnp.int32), jnp.floor(sy).astype(jnp.int32)
    mask = _axis_mask(h, iy + a, h + iy - (a - 1), 1) & _axis_mask(w, ix + a, w + ix - (a - 1), 2)
    return z, jnp.broadcast_to(mask, x.shape).astype(x.dtype)


def affine_bandlimit_filter(mat: jax.Array, a: int = 3, amax: int = 16, aflt: int = 64, up: int = 4,
                            cutoff_in: float = 1, cutoff_out: float = 1) -> jax.Array:
    """Low-pass filter [2 amax up - 1]^2, sampled `up` taps per pixel, bandlimiting both the input
    grid and the grid that the affine `mat` maps it to.

    The filter is an ideal box spectrum on the input grid convolved with the same box rotated and
    sheared by `mat` (so the product of the two spectra passes only what both grids can hold), the
    two sincs windowed by the likewise convolved Lanczos-a windows. The convolutions run as FFT
    products over a wider 2 aflt support, then the centre of radius amax is kept and each of the
    up x up polyphase components is scaled to a DC gain of 1 / up^2.
    """
    if not a <= amax < aflt:
        raise ValueError(f"need a <= amax < aflt, got a={a}, amax={amax}, aflt={aflt}")
    mat = jnp.asarray(mat, jnp.float32)
    half = aflt * up - 1  # taps on each side of the centre, on the wide support
    offsets = jnp.arange(-half, half + 1, dtype=jnp.float32) / up
    yi, xi = jnp.meshgrid(offsets, offsets, indexing="ij")
    xo = mat[0, 0] * xi + mat[0, 1] * yi
    yo = mat[1, 0] * xi + mat[1, 1] * yi
    ideal = _centred_convolution(sinc(cutoff_in * xi) * sinc(cutoff_in * yi),
                                 sinc(cutoff_out * xo) * sinc(cutoff_out * yo))
    window = _centred_convolution(lanczos_window(xi, a) * lanczos_window(yi, a),
                                  lanczos_window(xo, a) * lanczos_window(yo, a))
    keep = amax * up - 1  # taps on each side of the centre that are kept
    taps = (ideal * window)[half - keep:half + keep + 1, half - keep:half + keep + 1]
    phase = jnp.arange(taps.shape[0]) % up
    phase_gain = jnp.zeros((up, up), taps.dtype).at[phase[:, None], phase[None, :]].add(taps)
    return taps / (phase_gain[phase[:, None], phase[None, :]] * up ** 2)


def _centred_convolution(p: jax.Array, q: jax.Array) -> jax.Array:
    # Circular 2D convolution of two odd-sized arrays whose origin is their centre, origin kept there.
    spectrum = jnp.fft.fft2(jnp.fft.ifftshift(p)) * jnp.fft.fft2(jnp.fft.ifftshift(q))
    return jnp.fft.fftshift(jnp.real(jnp.fft.ifft2(spectrum)))


def _convolve(x: jax.Array, f: jax.Array, up: int, pad: tuple[int, int]) -> jax.Array:
    # Zero-insertion upsampling by `up`, zero padding (pad[0] before, pad[1] after) and a true 2D
    # convolution with f, applied to every channel alike.
    n, h, w, c = x.shape
    planes = x.transpose(0, 3, 1, 2).reshape(n * c, h, w, 1)
    kernel = jnp.flip(f, (0, 1)).astype(x.dtype)[:, :, None, None]
    padding = ((pad[0], pad[1] + up - 1),) * 2
    y = jax.lax.conv_general_dilated(planes, kernel, (1, 1), padding, lhs_dilation=(up, up),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                     precision=jax.lax.Precision.HIGHEST)
    return y.reshape(n, c, *y.shape[1:3]).transpose(0, 2, 3, 1)


def _bilinear_sample(y: jax.Array, sx: jax.Array, sy: jax.Array) -> jax.Array:
    # Bilinear sampling of NHWC y at pixel coordinates (sx, sy) [H, W]; outside taps read zero.
    _, hy, wy, _ = y.shape
    x0, y0 = jnp.floor(sx), jnp.floor(sy)
    out = 0
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            weight = (1 - jnp.abs(sx - xi)) * (1 - jnp.abs(sy - yi))
            valid = (xi >= 0) & (xi < wy) & (yi >= 0) & (yi < hy)
            tap = y[:, jnp.clip(yi, 0, hy - 1).astype(jnp.int32), jnp.clip(xi, 0, wy - 1).astype(jnp.int32), :]
            out = out + tap * jnp.where(valid, weight, 0)[None, :, :, None]
    return out


def affine_transformation(x: jax.Array, mat: jax.Array, up: int = 4, **filter_kwargs) -> tuple[jax.Array, jax.Array]:
    """Resamples images under the 2D affine `mat` (3x3): bandlimited upsampling, then bilinear lookup."""
    _, h, w, _ = x.shape
    f = affine_bandlimit_filter(mat, up=up, **filter_kwargs)
    p = f.shape[0] // 2
    fw = f.shape[0]
    y = _convolve(x, f * up ** 2, up, (p + (fw + up - 1) // 2, p + (fw - up) // 2))
    _, hy, wy, _ = y.shape
    # Each output pixel centre, in coordinates spanning [-1, 1] across the shorter side (and
    # proportionally more across a longer one), maps back through mat^-1 (whose translation is in
    # units of the shorter side, hence doubled) to a source point; on y, with `up` samples per pixel,
    # that point lies up * S / 2 times further from y's centre index, S the shorter side.
    inverse = jnp.linalg.inv(jnp.asarray(mat, jnp.float32)).at[:2, 2].multiply(2)
    short = min(h, w)
    u = ((2 * jnp.arange(w, dtype=jnp.float32) + 1) / w - 1) * (w / short)
    v = ((2 * jnp.arange(h, dtype=jnp.float32) + 1) / h - 1) * (h / short)
    src_u = inverse[0, 0] * u[None, :] + inverse[0, 1] * v[:, None] + inverse[0, 2]
    src_v = inverse[1, 0] * u[None, :] + inverse[1, 1] * v[:, None] + inverse[1, 2]
    sx, sy = wy / 2 + src_u * (up * short / 2), hy / 2 + src_v * (up * short / 2)
    z = _bilinear_sample(y, sx, sy)
    # The official mask is a box of ones (c pixels in from the border of y) sampled with nearest lookup.
    c = p * 2 + 1
    nx, ny = jnp.round(sx), jnp.round(sy)
    mask = (nx >= c) & (nx < wy - c) & (ny >= c) & (ny < hy - c)
    return z, jnp.broadcast_to(mask[None, :, :, None], x.shape).astype(x.dtype)


def fractional_rotation(x: jax.Array, angle: jax.Array | float, a: int = 3,
                        **filter_kwargs) -> tuple[jax.Array, jax.Array]:
    """Rotates images by `angle` with bandlimited resampling (operator R_alpha of E.3)."""
    return affine_transformation(x, rotation_matrix(angle), a=a, amax=a * 2, **filter_kwargs)


def fractional_pseudo_rotation(x: jax.Array, angle: jax.Array | float, a: int = 3,
                               **filter_kwargs) -> tuple[jax.Array, jax.Array]:
    """Filters images as a rotation by `angle` would, without rotating them (operator R*_alpha of E.3)."""
    f = affine_bandlimit_filter(rotation_matrix(-jnp.asarray(angle, jnp.float32)), a=a, amax=a * 2, up=1,
                                **filter_kwargs)
    c = f.shape[0] // 2
    y = _convolve(x, f, 1, (c, c))
    _, h, w, _ = x.shape
    mask = _axis_mask(h, c, h - c, 1) & _axis_mask(w, c, w - c, 2)
    return y, jnp.broadcast_to(mask, x.shape).astype(x.dtype)


# The metric.
def masked_squared_error(ref: jax.Array, img: jax.Array, mask: jax.Array) -> tuple[float, float]:
    """(sum of mask * (ref - img)^2, sum of mask), summed in float64."""
    sq = np.asarray((ref - img) ** 2 * mask, np.float32).astype(np.float64).sum()
    return float(sq), float(np.asarray(mask, np.float32).astype(np.float64).sum())


def psnr(squared_error_sum: float, mask_sum: float) -> float:
    """PSNR in dB of images with range 2 ([-1, 1]) from summed masked squared error (inf when exact)."""
    if mask_sum <= 0:
        raise ValueError("PSNR over an empty mask: no pixel is valid after the transformation")
    if squared_error_sum == 0:
        return math.inf
    return 20 * math.log10(2) - 10 * math.log10(squared_error_sum / mask_sum)


def masked_psnr(ref: jax.Array, img: jax.Array, mask: jax.Array) -> float:
    """PSNR in dB over the pixels where mask is 1."""
    return psnr(*masked_squared_error(ref, img, mask))


@functools.partial(jax.jit, static_argnames="kind")
def _compare(kind: str, orig: jax.Array, img: jax.Array, param: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    # (reference, image, mask) to compare: the transformed original against the generator's output
    # (for EQ-R, against its pseudo-rotation, with the product of both masks).
    if kind == "rot":
        ref, ref_mask = fractional_rotation(orig, param)
        img, img_mask = fractional_pseudo_rotation(img, param)
        return ref, img, ref_mask * img_mask
    op = integer_translation if kind == "int" else fractional_translation
    ref, mask = op(orig, param[0], param[1])
    return ref, img, mask


def equivariance_psnr(render: Render, z_dim: int, c_dim: int, kind: str, num_samples: int, key: jax.Array,
                      labels: np.ndarray | None = None, batch_size: int = 4, translate_max: float = 0.125,
                      rotate_max: float = 1.0) -> float:
    """EQ-T (kind 'int'), EQ-T_frac ('frac') or EQ-R ('rot') PSNR in dB, as the official metric samples it."""
    if kind not in EQ_KINDS:
        raise ValueError(f"equivariance kind must be one of {EQ_KINDS}, got {kind!r}")
    sq_total = mask_total = 0.0
    for _ in range(0, num_samples, batch_size):
        key, key_zc, key_t = jax.random.split(key, 3)
        z, c = latents_and_labels(key_zc, z_dim, c_dim, labels, batch_size)
        orig = render(z, c, jnp.eye(3))
        if kind == "rot":
            param = (jax.random.uniform(key_t, ()) * 2 - 1) * (rotate_max * np.pi)
            transform = rotation_matrix(-param)
        else:
            param = (jax.random.uniform(key_t, (2,)) * 2 - 1) * translate_max
            if kind == "int":
                short = min(orig.shape[1:3])  # the unit length of a non-square canvas
                param = jnp.round(param * short) / short
            transform = jnp.eye(3).at[:2, 2].set(-param)
        sq, m = masked_squared_error(*_compare(kind, orig, render(z, c, transform), param))
        sq_total += sq
        mask_total += m
    return psnr(sq_total, mask_total)
