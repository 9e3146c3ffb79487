"""Conversion to and from NVIDIA's official StyleGAN (2019, TF), StyleGAN2/3 and R3GAN weights."""
from __future__ import annotations

import os
from typing import BinaryIO, Union

import flax.linen as nn

from stylegan_jax.convert.official_pickle import NETWORK_KEYS, OfficialNetwork, read_official_pickle
from stylegan_jax.convert.state_dict import from_official_state_dict, to_official_state_dict
from stylegan_jax.convert.tf1_pickle import is_stylegan2019_pickle, read_stylegan2019_pickle


def load_official_pickle(path_or_file: Union[str, os.PathLike, BinaryIO]) -> dict[str, tuple[nn.Module, dict]]:
    """Reads an official snapshot .pkl safely (no code from the file runs, no torch needed).

    Returns {'G', 'D', 'G_ema' (those present): (module, variables)}; the dataset's kwargs are
    available from `read_official_pickle`. A 2019 StyleGAN TensorFlow pickle (G, D, Gs) is read by
    `read_stylegan2019_pickle` (no TensorFlow needed), its Gs as 'G_ema'.
    """
    if is_stylegan2019_pickle(path_or_file):
        return read_stylegan2019_pickle(path_or_file)
    snapshot = read_official_pickle(path_or_file)
    return {key: from_official_state_dict(net.class_name, net.init_kwargs, net.state_dict)
            for key, net in snapshot.items() if key in NETWORK_KEYS}
