"""Conversion to and from NVIDIA's official StyleGAN2/3 weights."""
from __future__ import annotations

import os
from typing import BinaryIO, Union

import flax.linen as nn

from stylegan_jax.convert.official_pickle import NETWORK_KEYS, OfficialNetwork, read_official_pickle
from stylegan_jax.convert.state_dict import from_official_state_dict, to_official_state_dict


def load_official_pickle(path_or_file: Union[str, os.PathLike, BinaryIO]) -> dict[str, tuple[nn.Module, dict]]:
    """Reads an official snapshot .pkl safely (no code from the file runs, no torch needed).

    Returns {'G', 'D', 'G_ema' (those present): (module, variables)}; the dataset's kwargs are
    available from `read_official_pickle`.
    """
    snapshot = read_official_pickle(path_or_file)
    return {key: from_official_state_dict(net.class_name, net.init_kwargs, net.state_dict)
            for key, net in snapshot.items() if key in NETWORK_KEYS}
