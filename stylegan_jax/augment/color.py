"""The colour stage: one 4x4 matrix per sample acting on (r, g, b, 1)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_F32 = np.float32
LUMA_AXIS = np.asarray([1, 1, 1, 0] / np.sqrt(3), np.float32)  # v
_VVT = np.outer(LUMA_AXIS, LUMA_AXIS).astype(np.float32)
_EYE = np.eye(4, dtype=np.float32)


def _axis_rotation(theta: jax.Array) -> jax.Array:
    """[B, 4, 4] rotations by theta about the luma axis v (Rodrigues), 1 in the corner."""
    vx, vy, vz = (_F32(v) for v in LUMA_AXIS[:3])
    cross = np.asarray([[0, -vz, vy, 0], [vz, 0, -vx, 0], [-vy, vx, 0, 0], [0, 0, 0, 0]], np.float32)
    rim = np.diag([1, 1, 1, 0]).astype(np.float32)
    s, c = jnp.sin(theta)[:, None, None], jnp.cos(theta)[:, None, None]
    rotation = _VVT * (_F32(1) - c) + c * rim + s * cross
    return rotation.at[:, 3, 3].set(1)


def color_matrix(params: dict, batch: int) -> jax.Array:
    """M [B, 4, 4] = Saturation . Hue . Lumaflip . Contrast . Brightness, from the gated parameters."""
    factors = []
    if "brightness_b" in params:
        b = params["brightness_b"]
        factors.append(jnp.broadcast_to(_EYE, (batch, 4, 4)).at[:, :3, 3].set(b[:, None]))
    if "contrast_c" in params:
        c = params["contrast_c"]
        factors.append(jnp.broadcast_to(_EYE, (batch, 4, 4)) * jnp.stack([c, c, c, jnp.ones_like(c)], 1)[:, None, :])
    if "lumaflip_i" in params:
        factors.append(_EYE - (_F32(2) * _VVT) * params["lumaflip_i"][:, None, None])
    if "hue_theta" in params:
        factors.append(_axis_rotation(params["hue_theta"]))
    if "saturation_s" in params:
        factors.append(_VVT + (_EYE - _VVT) * params["saturation_s"][:, None, None])
    m = jnp.broadcast_to(_EYE, (batch, 4, 4))
    for factor in factors:
        m = jnp.matmul(factor, m, precision=jax.lax.Precision.HIGHEST)
    return m


def apply_color(images: jax.Array, m: jax.Array) -> jax.Array:
    """rgb_out = M[:3, :3] rgb + M[:3, 3] for NHWC RGB; one channel uses the mean of rows 0-2 of M."""
    channels = images.shape[-1]
    if channels == 3:
        # A batched product rather than a broadcast multiply-and-reduce: XLA:CPU (jax 0.10) miscompiles
        # the latter when it follows the geometric stage inside one jit.
        mixed = jnp.einsum("bhwc,bdc->bhwd", images, m[:, :3, :3], precision=jax.lax.Precision.HIGHEST)
        return mixed + m[:, None, None, :3, 3]
    if channels == 1:
        mean = jnp.sum(m[:, :3, :], axis=1) / _F32(3)  # [B, 4]
        return images * jnp.sum(mean[:, :3], axis=1)[:, None, None, None] + mean[:, None, None, 3:]
    raise ValueError(f"the colour transforms need RGB (3 channels) or L (1 channel) images, got {channels} channels")
