"""Test helper: writes pickles shaped like the official 2019 StyleGAN TensorFlow pickles, without TensorFlow.

A `karras2019stylegan-*.pkl` pickles the tuple (G, D, Gs) of dnnlib.tflib.network.Network objects,
each by the dict of Network.__getstate__: version, name, static_kwargs, components (sub-Networks),
build_module_src, build_func_name and variables, a list of (TF name, numpy array). `Network` below
pickles under that global name (through official_pickle_writer's placeholder modules); the variables
are made from our networks' variable trees with the official names and layouts.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from flax import traverse_util

import official_pickle_writer as w

MODULE_SRC = "# placeholder for the source of training/networks_stylegan.py\n"


class Network:
    """Pickles as dnnlib.tflib.network.Network with the given __getstate__ dict."""

    def __init__(self, state: dict):
        self.state = state

    def __getstate__(self) -> dict:
        return self.state


Network.__module__, Network.__qualname__ = "dnnlib.tflib.network", "Network"
w._placeholder_module("dnnlib.tflib.network").Network = Network


def network(name: str, func: str, static_kwargs: Mapping[str, Any], variables: list[tuple[str, Any]],
            components: Mapping[str, Network] = (), module_src: str = MODULE_SRC) -> Network:
    """A Network with the state that Network.__getstate__ (version 3) returns."""
    return Network(dict(version=3, name=name, static_kwargs=dict(static_kwargs), components=dict(components),
                        build_module_src=module_src, build_func_name=func, variables=list(variables)))


def _flat(tree: Mapping[str, Any]) -> dict[tuple[str, ...], np.ndarray]:
    """{path: numpy array} of a variable tree."""
    return {keys: np.asarray(value) for keys, value in traverse_util.flatten_dict(dict(tree)).items()}


def _lod(value: Any) -> np.float32:
    """A lod variable as TF's session.run returns a 0-d variable: a numpy scalar."""
    return np.float32(value)


def generator(name: str, variables: Mapping[str, Any], static_kwargs: Mapping[str, Any], num_ws: int,
              module_src: str = MODULE_SRC) -> Network:
    """A G_style Network (with its G_mapping and G_synthesis) holding our Generator's `variables`."""
    params, buffers = variables["params"], variables["buffers"]
    mapping = [("LabelConcat/weight" if keys == ("LabelConcat",) else "/".join(keys), value)
               for keys, value in _flat(params["mapping"]).items()]
    noise = _flat(buffers["synthesis"])
    layers = [keys[:2] for keys in noise if keys[-1] == "noise_const"]
    order = sorted(layers, key=lambda bl: (int(bl[0].split("x")[0]), bl[1] not in ("Const", "Conv0_up")))
    synthesis = [("lod", _lod(buffers["synthesis"]["lod"]))]
    synthesis += [(f"noise{i}", noise[(block, layer, "Noise", "noise_const")][None, None])
                  for i, (block, layer) in enumerate(order)]
    synthesis += [("/".join(keys), value) for keys, value in _flat(params["synthesis"]).items()]
    components = dict(
        mapping=network("G_mapping", "G_mapping", {**static_kwargs, "dlatent_broadcast": num_ws}, mapping,
                        module_src=module_src),
        synthesis=network("G_synthesis", "G_synthesis", static_kwargs, synthesis, module_src=module_src))
    own = [("lod", _lod(0)), ("dlatent_avg", np.asarray(buffers["mapping"]["dlatent_avg"]))]
    return network(name, "G_style", static_kwargs, own, components, module_src)


def discriminator(name: str, variables: Mapping[str, Any], static_kwargs: Mapping[str, Any]) -> Network:
    """A D_basic Network holding our Discriminator's `variables`."""
    own = [("lod", _lod(variables["buffers"]["lod"]))]
    own += [("/".join(keys), value) for keys, value in _flat(variables["params"]).items()]
    return network(name, "D_basic", static_kwargs, own)


def dump(networks: Any, file) -> None:
    """Pickles (G, D, Gs) as the official training loop does (protocol 4)."""
    w.dump(networks, file, protocol=4)
