"""Reads the official 2019 StyleGAN TensorFlow pickles (`karras2019stylegan-*.pkl`) without TensorFlow.

Such a file pickles the tuple (G, D, Gs) of `dnnlib.tflib.network.Network` objects. Each one's state
names its build function ('build_func_name': G_style or D_basic), its keyword arguments
('static_kwargs'), its sub-networks ('components': G_style's 'mapping' and 'synthesis'), its own
variables as (TF name, numpy array) pairs and the source of its module ('build_module_src'), which is
never executed here. The file is read with the restricted unpickler: only the Network global (an inert
record of its state) and numpy's checked array reconstruction (numpy_pickle) are allowed.

Our 2019 networks keep the TF variable names, so loading is renaming: 'G_synthesis/8x8/Conv1/weight'
is params['synthesis']['8x8']['Conv1']['weight'], 'G_synthesis/noise{i}' [1, 1, H, W] the i-th styled
layer's buffers[...]['Noise']['noise_const'] [H, W], G_style's 'dlatent_avg' buffers['mapping']['dlatent_avg'];
G_style's own 'lod' is unused (G_synthesis has its own). G_style's truncation defaults
(truncation_psi=0.7, cutoff 8), style_mixing_prob and runtime flags such as randomize_noise are ignored;
options that the port does not implement are refused.

    nets = read_stylegan2019_pickle("karras2019stylegan-ffhq-1024x1024.pkl")
    G, variables = nets["G_ema"]  # Gs
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import pickletools
from typing import Any, BinaryIO, Callable, Mapping, Union

import flax.linen as nn
import numpy as np
from flax import traverse_util

from stylegan_jax.convert._restricted_unpickler import MALFORMED, load_restricted, short_repr
from stylegan_jax.convert.numpy_pickle import NUMPY_GLOBALS
from stylegan_jax.convert.state_dict import abstract_variables, build_network, flatten_variables

G_STYLE = "training.networks_stylegan.G_style"
D_BASIC = "training.networks_stylegan.D_basic"
TF1_NETWORK = ("dnnlib.tflib.network", "Network")
ROLES = (("G", "G"), ("D", "D"), ("G_ema", "Gs"))  # (our key, official name) in the pickled tuple's order
COMPONENTS = {"mapping": "G_mapping", "synthesis": "G_synthesis"}
IGNORED_VARIABLES = {"lod"}  # G_style's own lod: the synthesis network reads its own
HEAD_BYTES = 1024  # a pickle's first global lies within its first few dozen bytes

# Official options implemented only at these values (the first is the official default).
SUPPORTED = {
    "fmap_decay": (1.0,), "use_styles": (True,), "const_input_layer": (True,), "use_noise": (True,),
    "nonlinearity": ("lrelu",), "mapping_nonlinearity": ("lrelu",), "use_wscale": (True,),
    "normalize_latents": (True,), "use_pixel_norm": (False,), "use_instance_norm": (True,),
    "dtype": ("float32",), "blur_filter": ([1, 2, 1],), "structure": ("auto", "linear", "recursive"),
    "fused_scale": ("auto", True, False),
}
CHECKED_OPTIONS = {
    "G_mapping": ("mapping_nonlinearity", "use_wscale", "normalize_latents", "dtype"),
    "G_synthesis": ("fmap_decay", "use_styles", "const_input_layer", "use_noise", "nonlinearity", "use_wscale",
                    "use_pixel_norm", "use_instance_norm", "dtype", "blur_filter", "structure", "fused_scale"),
    "D_basic": ("fmap_decay", "nonlinearity", "use_wscale", "dtype", "blur_filter", "structure", "fused_scale"),
}


class NetworkRecord:
    """Stand-in for dnnlib.tflib.network.Network: keeps the pickled state dict once, runs nothing."""

    __slots__ = ("state",)

    def __setstate__(self, state: Any) -> None:
        if hasattr(self, "state") or not isinstance(state, dict):
            raise pickle.UnpicklingError("malformed dnnlib.tflib.network.Network: its state must be one dict")
        self.state = state


TF1_GLOBALS = {TF1_NETWORK: NetworkRecord, **NUMPY_GLOBALS}


@dataclasses.dataclass(frozen=True)
class TFNetwork:
    """The checked state of one pickled Network; `components` are still unchecked records."""

    func: str
    kwargs: dict[str, Any]
    variables: dict[str, np.ndarray | np.generic]
    components: dict[str, Any]


def is_stylegan2019_pickle(path_or_file: Union[str, os.PathLike, BinaryIO]) -> bool:
    """Whether the pickle's first global is dnnlib.tflib.network.Network (reads its first bytes, unpickles nothing)."""
    if isinstance(path_or_file, (str, os.PathLike)):
        with open(path_or_file, "rb") as f:
            head = f.read(HEAD_BYTES)
    elif getattr(path_or_file, "seekable", lambda: False)():
        start = path_or_file.tell()
        head = path_or_file.read(HEAD_BYTES)
        path_or_file.seek(start)
    else:
        return False
    return _first_global(head) == TF1_NETWORK


def _first_global(head: bytes) -> tuple[str, str] | None:
    """(module, name) of the first global that the pickle opcodes in `head` load, None if none is seen."""
    strings: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(head):
            if opcode.name == "GLOBAL":
                return tuple(arg.split(" ", 1))
            if opcode.name == "STACK_GLOBAL":
                return tuple(strings[-2:]) if len(strings) >= 2 else None
            if isinstance(arg, str):
                strings.append(arg)
    except MALFORMED:
        pass  # the head ends mid-opcode, or it is no pickle: the full reader will say what is wrong
    return None


def read_stylegan2019_pickle(path_or_file: Union[str, os.PathLike, BinaryIO]) -> dict[str, tuple[nn.Module, dict]]:
    """Reads an official 2019 StyleGAN pickle: {'G', 'D', 'G_ema' (its Gs): (module, variables)}.

    The variables are {'params', 'buffers'} of float32 numpy arrays, shaped as the module's init makes
    them. Raises pickle.UnpicklingError for a global other than Network and numpy's (nothing of the
    file runs) and ValueError when it is not such a pickle, lacks or mis-shapes a variable, or uses
    an option that the port does not implement.
    """
    networks = _load_networks(path_or_file)
    return {key: _convert(record, role) for (key, role), record in zip(ROLES, networks)}


def _load_networks(path_or_file: Union[str, os.PathLike, BinaryIO]) -> tuple:
    """Unpickles the file with only TF1_GLOBALS allowed; checks that it holds (G, D, Gs)."""
    what = "an official 2019 StyleGAN pickle"
    if isinstance(path_or_file, (str, os.PathLike)):
        with open(path_or_file, "rb") as f:
            obj = load_restricted(f, TF1_GLOBALS, what)
    else:
        obj = load_restricted(path_or_file, TF1_GLOBALS, what)
    if not (isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(net, NetworkRecord) for net in obj)):
        raise ValueError(f"not a 2019 StyleGAN pickle: expected the tuple (G, D, Gs) of networks, "
                         f"got {short_repr(obj)}")
    return obj


def _network(record: Any, where: str, func: str) -> TFNetwork:
    """Checks a Network record's state and that `func` builds it."""
    state = getattr(record, "state", None)
    if not isinstance(record, NetworkRecord) or state is None:
        raise ValueError(f"{where}: expected a dnnlib.tflib.network.Network, got {type(record).__name__}")
    if state.get("version") not in (2, 3):
        raise ValueError(f"{where}: unsupported Network version {short_repr(state.get('version'))}")
    if state.get("build_func_name") != func:
        raise ValueError(f"not a 2019 StyleGAN pickle: {where} is built by "
                         f"{short_repr(state.get('build_func_name'))}, expected {func!r}")
    kwargs, variables, components = state.get("static_kwargs"), state.get("variables"), state.get("components", {})
    if not (isinstance(kwargs, dict) and all(isinstance(key, str) for key in kwargs)):
        raise ValueError(f"{where}: static_kwargs must be a dict of keyword arguments")
    if not (isinstance(components, dict) and isinstance(variables, (list, tuple)) and all(
            isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
            and isinstance(item[1], (np.ndarray, np.generic)) for item in variables)):
        raise ValueError(f"{where}: variables must be (name, numpy array) pairs and components a dict")
    named = dict(variables)
    if len(named) != len(variables):
        raise ValueError(f"{where}: a variable name occurs twice")
    return TFNetwork(func, kwargs, named, components)


def _convert(record: Any, role: str) -> tuple[nn.Module, dict]:
    """(module, variables) of the pickled network `role` (G, D or Gs)."""
    if role == "D":
        net = _network(record, role, "D_basic")
        module = build_network(D_BASIC, _discriminator_kwargs(net.kwargs, role))
        return module, _variables(module, net.variables, role, lambda collection, keys: "/".join(keys))
    net = _network(record, role, "G_style")
    if set(net.components) != set(COMPONENTS):
        raise ValueError(f"{role}: components {short_repr(sorted(map(str, net.components)))}, "
                         f"expected {sorted(COMPONENTS)}")
    parts = {key: _network(net.components[key], f"{role}/{func}", func) for key, func in COMPONENTS.items()}
    variables = dict(net.variables)
    for key, part in parts.items():
        if part.components:
            raise ValueError(f"{role}/{COMPONENTS[key]}: unexpected components "
                             f"{short_repr(sorted(map(str, part.components)))}")
        variables.update((f"{COMPONENTS[key]}/{name}", value) for name, value in part.variables.items())
    kwargs = _generator_kwargs(net.kwargs, parts["mapping"].kwargs, parts["synthesis"].kwargs, role)
    module = build_network(G_STYLE, kwargs)
    return module, _variables(module, variables, role, _generator_tf_name)


def _generator_tf_name(collection: str, keys: tuple[str, ...]) -> str:
    """The TF name (below G_style) of one of our generator's variables."""
    if keys == ("mapping", "dlatent_avg"):
        return "dlatent_avg"
    if keys == ("mapping", "LabelConcat"):
        return "G_mapping/LabelConcat/weight"
    if collection == "buffers" and keys[-1] == "noise_const":  # synthesis/{block}/{layer}/Noise/noise_const
        block, layer = keys[1], keys[2]
        index = 2 * int(np.log2(int(block.split("x")[0]))) - 4 + (layer in ("Conv", "Conv1"))
        return f"G_synthesis/noise{index}"
    return "/".join((COMPONENTS[keys[0]], *keys[1:]))


def _variables(module: nn.Module, tf_variables: Mapping[str, Any], role: str,
               tf_name: Callable[[str, tuple[str, ...]], str]) -> dict:
    """Our variable tree from the TF variables; each must be consumed and shaped right."""
    leaves, used = {}, set()
    for collection, keys, spec in flatten_variables(abstract_variables(module)).values():
        name = tf_name(collection, keys)
        if name not in tf_variables:
            raise ValueError(f"{role}: missing variable {name!r}")
        value = tf_variables[name]
        shape = tuple(spec.shape)
        tf_shape = (1, 1, *shape) if keys[-1] == "noise_const" else shape
        if np.shape(value) != tf_shape:
            raise ValueError(f"{role}: variable {name!r} has shape {np.shape(value)}, expected {tf_shape}")
        if value.dtype.kind != "f":
            raise ValueError(f"{role}: variable {name!r} has dtype {value.dtype}, expected floats")
        leaves[(collection, *keys)] = np.asarray(value, np.float32).reshape(shape)
        used.add(name)
    unknown = set(tf_variables) - used - IGNORED_VARIABLES
    if unknown:
        raise ValueError(f"{role}: unexpected variable(s) {short_repr(sorted(unknown))}")
    return traverse_util.unflatten_dict(leaves)


def _generator_kwargs(style: Mapping[str, Any], mapping: Mapping[str, Any], synthesis: Mapping[str, Any],
                      role: str) -> dict[str, Any]:
    """Our Generator's kwargs from the static kwargs of G_style, G_mapping and G_synthesis."""
    where_mapping, where_synthesis = f"{role}/G_mapping", f"{role}/G_synthesis"
    _check_options(mapping, "G_mapping", where_mapping)
    _check_options(synthesis, "G_synthesis", where_synthesis)
    w_dim = _integer(mapping, "dlatent_size", 512, 1, where_mapping)
    if _integer(synthesis, "dlatent_size", 512, 1, where_synthesis) != w_dim:
        raise ValueError(f"{role}: G_mapping and G_synthesis disagree on dlatent_size")
    beta = style.get("dlatent_avg_beta", 0.995)
    mapping_kwargs = dict(num_layers=_integer(mapping, "mapping_layers", 8, 1, where_mapping),
                          layer_features=_integer(mapping, "mapping_fmaps", 512, 1, where_mapping),
                          lr_multiplier=_real(mapping, "mapping_lrmul", 0.01, where_mapping),
                          w_avg_beta=1.0 if beta is None else _real(style, "dlatent_avg_beta", 0.995, role))
    return dict(z_dim=_integer(mapping, "latent_size", 512, 1, where_mapping),
                c_dim=_integer(mapping, "label_size", 0, 0, where_mapping), w_dim=w_dim,
                img_resolution=_resolution(synthesis, 1024, where_synthesis),
                img_channels=_integer(synthesis, "num_channels", 3, 1, where_synthesis),
                mapping_kwargs=mapping_kwargs, **_widths(synthesis, where_synthesis))


def _discriminator_kwargs(kwargs: Mapping[str, Any], role: str) -> dict[str, Any]:
    """Our Discriminator's kwargs from D_basic's static kwargs (official defaults where absent)."""
    _check_options(kwargs, "D_basic", role)
    return dict(c_dim=_integer(kwargs, "label_size", 0, 0, role), img_resolution=_resolution(kwargs, 32, role),
                img_channels=_integer(kwargs, "num_channels", 1, 1, role),
                mbstd_group_size=_integer(kwargs, "mbstd_group_size", 4, 0, role),
                mbstd_num_features=_integer(kwargs, "mbstd_num_features", 1, 1, role), **_widths(kwargs, role))


def _widths(kwargs: Mapping[str, Any], where: str) -> dict[str, Any]:
    """channel_base (twice fmap_base), channel_max (fmap_max) and fused_scale."""
    return dict(channel_base=2 * _integer(kwargs, "fmap_base", 8192, 1, where),
                channel_max=_integer(kwargs, "fmap_max", 512, 1, where),
                fused_scale="auto" if kwargs.get("fused_scale", "auto") == "auto" else bool(kwargs["fused_scale"]))


def _check_options(kwargs: Mapping[str, Any], func: str, where: str) -> None:
    """Refuses an option of `func` set to a value that the port does not implement."""
    for key in CHECKED_OPTIONS[func]:
        value = kwargs.get(key, SUPPORTED[key][0])
        value = value.tolist() if isinstance(value, np.ndarray) else list(value) if isinstance(value, tuple) else value
        try:
            supported = value in SUPPORTED[key]
        except (ValueError, TypeError):  # e.g. an array, which compares elementwise
            supported = False
        if not supported:
            raise ValueError(f"{where}: unsupported option {key}={short_repr(value)} "
                             f"(supported: {', '.join(map(repr, SUPPORTED[key]))})")


def _integer(kwargs: Mapping[str, Any], key: str, default: int, minimum: int, where: str) -> int:
    """kwargs[key] (default if absent) as an int, refused unless it is a whole number >= minimum."""
    value = kwargs.get(key, default)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not float(value).is_integer() or value < minimum:
        raise ValueError(f"{where}: {key} must be an integer >= {minimum}, got {short_repr(value)}")
    return int(value)


def _real(kwargs: Mapping[str, Any], key: str, default: float, where: str) -> float:
    """kwargs[key] (default if absent) as a float, refused unless it is a finite number."""
    value = kwargs.get(key, default)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value):
        raise ValueError(f"{where}: {key} must be a finite number, got {short_repr(value)}")
    return float(value)


def _resolution(kwargs: Mapping[str, Any], default: int, where: str) -> int:
    """The 'resolution' option, refused unless it is a power of two >= 4."""
    value = _integer(kwargs, "resolution", default, 4, where)
    if value & (value - 1):
        raise ValueError(f"{where}: resolution must be a power of two >= 4, got {value}")
    return value
