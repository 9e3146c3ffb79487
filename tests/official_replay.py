"""Replays recorded official runs (golden files with recorded random draws) through stylegan_jax.

Each replay_* function reads one golden file of the documented format and returns what the
official code produced for it, computed by this project, in the file's layout (NCHW).
"""
from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np

from r3gan_replay import replay_r3gan_loss  # noqa: F401  (R3GAN loss files: D and G phases)
from training_replay import replay_training  # noqa: F401  (train_step_*.npz: official training iterations)
from stylegan_jax.augment import AugmentSpec, augment_from_draws


@functools.partial(jax.jit, static_argnames="spec")
def _augment_with_grad(images_nchw, cotangent_nchw, draws, p, spec):
    """(output, d sum(output * cotangent) / d images), NCHW in and out."""
    to_nhwc = functools.partial(jnp.transpose, axes=(0, 2, 3, 1))
    out, vjp = jax.vjp(lambda x: augment_from_draws(x, draws, p, spec), to_nhwc(images_nchw))
    (grad,) = vjp(to_nhwc(cotangent_nchw))
    return jnp.transpose(out, (0, 3, 1, 2)), jnp.transpose(grad, (0, 3, 1, 2))


def replay_augment(path: str, case: str) -> tuple[np.ndarray, np.ndarray]:
    """(output, gradient of sum(output * cotangent) w.r.t. the input), NCHW float32, of one case of an
    augment.npz-format file, from its input, p, AugmentPipe kwargs and recorded draws."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data[f"{case}/meta"]))
        images = data[f"input/{meta['input']}"]
        cotangent = data[f"cotangent/{meta['cotangent']}"]
        draws = [data[d["key"]] for d in sorted(meta["draws"], key=lambda d: d["index"])]
        p = data[f"{case}/p"]
    spec = AugmentSpec(**meta["kwargs"])
    out, grad = _augment_with_grad(images, cotangent, draws, np.float32(p), spec)
    return np.asarray(out, np.float32), np.asarray(grad, np.float32)
