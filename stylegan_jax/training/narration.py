"""The lines a training run prints and logs about what it is doing: its data, networks and end."""
from __future__ import annotations

from typing import Any

import jax
import numpy as np

from stylegan_jax import fileio
from stylegan_jax.images import image_size


def _count(variables: Any) -> str:
    """The number of parameters of Flax variables, e.g. '1,234,567'."""
    return f"{sum(int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(variables['params'])):,}"


def scanning_line(dataset_config) -> str:
    """'Scanning the dataset (SOURCE PATH) ...' of a config's `dataset` section."""
    where = " ".join(part for part in (dataset_config.source, dataset_config.path or dataset_config.name) if part)
    return f"Scanning the dataset ({where}) ..."


def dataset_line(info, captions: bool = False) -> str:
    """'Dataset: NAME: N images, HxW, C channel(s), labels, x-flip' of a data.DatasetInfo (`captions`:
    its labels are captions' token ids)."""
    labels = f"{info.c_dim} classes" if info.c_dim else "no labels"
    if captions:
        labels = f"captions ({info.c_dim} CLIP token ids each)"
    height, width = image_size(info.resolution)
    return (f"Dataset: {info.name}: {info.num_images} images, {height}x{width}, "
            f"{info.channels} channel(s), {labels}, x-flip {'on' if info.xflip else 'off'}")


def networks_line(arch: str, g_variables: Any, d_variables: Any) -> str:
    """'Networks: ARCH G with N parameters, D with M, on K devices'."""
    devices = jax.devices()
    return (f"Networks: {arch} G with {_count(g_variables)} parameters, D with {_count(d_variables)}, "
            f"on {len(devices)} {devices[0].platform.upper()} device(s)")


def done_line(workdir: str, checkpoint_dir: str, step: int, nimg: int, seconds: float) -> str:
    """The last line of a finished run: how far it went, how long it took and where its outputs are."""
    minutes, secs = divmod(round(seconds), 60)
    return (f"Done: {nimg / 1e3:.3f} kimg in {minutes} min {secs} s. Checkpoint: step {step} in {checkpoint_dir}; "
            f"sample grids: {fileio.join(workdir, 'fakes_kimg*.png')}; log: {fileio.join(workdir, 'log.txt')}; "
            f"TensorBoard: {fileio.join(workdir, 'tensorboard')}")
