"""Test helper: writes pickles shaped like official network snapshots, without torch.

The bytes follow what torch and torch_utils.persistence emit under plain `pickle.dump`:
persistent modules as `torch_utils.persistence._reconstruct_persistent_obj(meta)`, tensors as
`torch._utils._rebuild_tensor_v2(...)` (parameters wrapped in `_rebuild_parameter`), storages as
`torch.storage._load_from_bytes(<legacy torch.save stream>)`. The global names are produced by
stand-in functions registered in placeholder modules while pickling.
"""
from __future__ import annotations

import collections
import contextlib
import io
import pickle
import struct
import sys
import types
from typing import Any, Callable, Collection, Iterator, Mapping, Optional

import numpy as np

MODULE_SRC = "# placeholder for the module source that a snapshot carries\n"
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
SYS_INFO = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
BUFFER_NAMES = {"resample_filter", "noise_const", "w_avg", "magnitude_ema", "up_filter", "down_filter",
                "transform", "freqs", "phases", "p", "Hz_geom", "Hz_fbank"}
SUBMODULE_CLASSES = {"mapping": "MappingNetwork", "synthesis": "SynthesisNetwork", "input": "SynthesisInput"}
STORAGE_NAMES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
                 np.dtype(np.float16): "HalfStorage", np.dtype(np.int64): "LongStorage",
                 np.dtype(np.int32): "IntStorage", np.dtype(np.int16): "ShortStorage",
                 np.dtype(np.int8): "CharStorage", np.dtype(np.uint8): "ByteStorage",
                 np.dtype(np.bool_): "BoolStorage"}

_MODULES: dict[str, types.ModuleType] = {}


def _placeholder_module(module: str) -> types.ModuleType:
    """The placeholder for `module`, registering its parent packages too (pickle imports them)."""
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        _MODULES.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
    return _MODULES[module]


def _stand_in(module: str, name: str) -> Callable[..., Any]:
    """A function that pickles as the global `module.name` (it is never called); one per name."""
    existing = getattr(_placeholder_module(module), name, None)
    if existing is not None:
        return existing

    def stand_in(*args):
        raise RuntimeError(f"stand-in for {module}.{name}")
    stand_in.__module__, stand_in.__name__, stand_in.__qualname__ = module, name, name
    setattr(_placeholder_module(module), name, stand_in)
    return stand_in


RECONSTRUCT_PERSISTENT_OBJ = _stand_in("torch_utils.persistence", "_reconstruct_persistent_obj")
REBUILD_TENSOR_V2 = _stand_in("torch._utils", "_rebuild_tensor_v2")
REBUILD_PARAMETER = _stand_in("torch._utils", "_rebuild_parameter")
LOAD_FROM_BYTES = _stand_in("torch.storage", "_load_from_bytes")
STORAGE_CLASSES = {dtype: _stand_in("torch", name) for dtype, name in STORAGE_NAMES.items()}


class EasyDict(dict):
    """Pickles as dnnlib.util.EasyDict, like the kwargs dicts of official training runs."""


EasyDict.__module__ = "dnnlib.util"
_placeholder_module("dnnlib.util").EasyDict = EasyDict


@contextlib.contextmanager
def _placeholder_modules() -> Iterator[None]:
    """Makes the placeholder modules importable (so pickle resolves the stand-ins) for a while."""
    saved = {name: sys.modules.get(name) for name in _MODULES}
    sys.modules.update(_MODULES)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module


class Call:
    """Pickles as the call func(*args); func may be any picklable global, e.g. os.system."""

    def __init__(self, func: Callable[..., Any], *args: Any):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def legacy_storage_stream(storage: np.ndarray, key: str = "0") -> bytes:
    """The legacy torch.save stream of a flat storage, as torch.storage._load_from_bytes takes it."""
    storage = np.ascontiguousarray(storage).reshape(-1)
    storage_id = ("storage", STORAGE_CLASSES[storage.dtype], key, "cpu", storage.size, None)
    f = io.BytesIO()
    with _placeholder_modules():
        for header in (LEGACY_MAGIC, SYS_INFO["protocol_version"], SYS_INFO):
            pickle.dump(header, f, protocol=2)
        pickler = pickle.Pickler(f, protocol=2)
        pickler.persistent_id = lambda obj: storage_id if obj is storage else None
        pickler.dump(storage)
        pickle.dump([key], f, protocol=2)
    f.write(struct.pack("<q", storage.size))
    f.write(storage.astype(storage.dtype.newbyteorder("<"), copy=False).tobytes())
    return f.getvalue()


def tensor(storage: np.ndarray, offset: int = 0, size: Optional[tuple] = None, stride: Optional[tuple] = None,
           parameter: bool = False) -> Call:
    """A pickled torch tensor: the view (offset, size, stride) of a flat storage (default: all of it)."""
    storage = np.array(storage, order="C")
    if size is None:
        size, stride = storage.shape, tuple(s // storage.itemsize for s in storage.strides)
    storage = storage.reshape(-1)
    data = Call(REBUILD_TENSOR_V2, Call(LOAD_FROM_BYTES, legacy_storage_stream(storage)), offset,
                tuple(size), tuple(stride), False, collections.OrderedDict())
    return Call(REBUILD_PARAMETER, data, False, collections.OrderedDict()) if parameter else data


def module_record(class_name: str, parameters: Mapping[str, Any] = (), buffers: Mapping[str, Any] = (),
                  modules: Mapping[str, Any] = (), init_kwargs: Optional[Mapping[str, Any]] = None) -> Call:
    """A pickled persistent module; numpy arrays become tensors, other values are pickled as given."""
    def as_tensor(value, parameter):
        return tensor(value, parameter=parameter) if isinstance(value, np.ndarray) else value

    hooks = ("_backward_hooks", "_forward_hooks", "_forward_pre_hooks", "_state_dict_hooks",
             "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks")
    state = {
        "training": False,
        "_parameters": {name: as_tensor(v, True) for name, v in dict(parameters).items()},
        "_buffers": {name: as_tensor(v, False) for name, v in dict(buffers).items()},
        "_non_persistent_buffers_set": set(),
        **{name: collections.OrderedDict() for name in hooks},
        "_modules": dict(modules),
        "_init_args": (),
        "_init_kwargs": init_kwargs if init_kwargs is not None else {},
    }
    meta = dict(type="class", version=6, module_src=MODULE_SRC, class_name=class_name, state=state)
    return Call(RECONSTRUCT_PERSISTENT_OBJ, meta)


def state_dict_tree(state_dict: Mapping[str, np.ndarray], buffer_names: Collection[str]) -> dict:
    """A state dict as nested nodes {'modules': {name: node}, 'parameters' / 'buffers': {leaf name: tensor}}."""
    tree: dict = {}
    for name, value in state_dict.items():
        *path, leaf = name.split(".")
        node = tree
        for part in path:
            node = node.setdefault("modules", {}).setdefault(part, {})
        node.setdefault("buffers" if leaf in buffer_names else "parameters", {})[leaf] = value
    return tree


def network_record(class_name: str, init_kwargs: Mapping[str, Any], state_dict: Mapping[str, np.ndarray]) -> Call:
    """A pickled top-level network built from its official class name, kwargs and state dict."""
    tree = state_dict_tree(state_dict, BUFFER_NAMES)

    def build(node, class_name, init_kwargs=None):
        modules = {name: build(child, SUBMODULE_CLASSES.get(name, "Layer"))
                   for name, child in node.get("modules", {}).items()}
        return module_record(class_name, node.get("parameters", {}), node.get("buffers", {}), modules, init_kwargs)

    return build(tree, class_name.rsplit(".", 1)[-1], _easydicts(init_kwargs))


def _easydicts(value: Any) -> Any:
    return EasyDict({k: _easydicts(v) for k, v in value.items()}) if isinstance(value, Mapping) else value


def dump(obj: Any, file, protocol: int = 4) -> None:
    """pickle.dump with the stand-in globals resolvable, as training_loop dumps a snapshot."""
    with _placeholder_modules():
        pickle.dump(obj, file, protocol=protocol)
