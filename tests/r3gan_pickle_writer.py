"""Test helper: writes R3GAN training snapshots as its trainer pickles them, without torch.

R3GAN's networks are plain torch modules, pickled by value: the class as a global (e.g.
`R3GAN.Networks.ResidualBlock`), then its `__dict__` (parameters, buffers, submodules, hooks and
plain attributes such as a stage's `DataType`). The module tree is rebuilt from an official state
dict, each node given the official class its position implies.
"""
from __future__ import annotations

import collections
from typing import Any, Mapping, Sequence

import numpy as np

import official_pickle_writer as w

HOOKS = ("_backward_pre_hooks", "_backward_hooks", "_forward_hooks", "_forward_hooks_with_kwargs",
         "_forward_hooks_always_called", "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs",
         "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks")
TORCH_DTYPES = {name: w._stand_in("torch", name) for name in ("float32", "bfloat16")}  # pickle as torch.<name>


def _module_class(qualified_name: str) -> type:
    """A class that pickles as the global `qualified_name`."""
    module, name = qualified_name.rsplit(".", 1)
    placeholder = w._placeholder_module(module)
    if not hasattr(placeholder, name):
        setattr(placeholder, name, type(name, (), {"__module__": module, "__qualname__": name}))
    return getattr(placeholder, name)


def torch_module(class_name: str, parameters: Mapping[str, np.ndarray] = (), buffers: Mapping[str, np.ndarray] = (),
                 modules: Mapping[str, Any] = (), **attributes: Any) -> Any:
    """An object that pickles like a torch module of class `class_name` (NEWOBJ, then its __dict__)."""
    cls = _module_class(class_name)
    module = cls.__new__(cls)
    module.__dict__.update({
        "training": False,
        "_parameters": collections.OrderedDict((k, w.tensor(v, parameter=True)) for k, v in dict(parameters).items()),
        "_buffers": collections.OrderedDict((k, w.tensor(v)) for k, v in dict(buffers).items()),
        "_non_persistent_buffers_set": set(),
        "_is_full_backward_hook": None,
        **{hook: collections.OrderedDict() for hook in HOOKS},
        "_modules": collections.OrderedDict(modules),
        **attributes})
    return module


def _class_name(name: str, node: dict, generator: bool) -> str:
    children, params = node.get("modules", {}), node.get("parameters", {})
    if name in ("MainLayers", "Layers"):
        return "torch.nn.modules.container.ModuleList"
    if "Layers" in children:
        return f"R3GAN.Networks.{'Generator' if generator else 'Discriminator'}Stage"
    if "LinearLayer1" in children:
        return "R3GAN.Networks.ResidualBlock"
    if "Basis" in params:
        return "R3GAN.Networks.GenerativeBasis"
    if "Basis" in children:
        return "R3GAN.Networks.DiscriminativeBasis"
    if "Resampler" in children:
        return f"R3GAN.Networks.{'Upsample' if generator else 'Downsample'}Layer"
    if name == "Resampler":
        return f"R3GAN.Resamplers.Interpolative{'Up' if generator else 'Down'}samplerCUDA"
    if "Bias" in params:
        return "R3GAN.FusedOperators.BiasedActivationCUDA"
    if "Layer" in children:
        return "R3GAN.Networks.Convolution"
    return f"torch.nn.modules.{'conv.Conv2d' if np.ndim(params['weight']) == 4 else 'linear.Linear'}"


def _attributes(class_name: str, node: dict, stage_dtype: Any) -> dict:
    if class_name.endswith("Stage"):
        return {"DataType": stage_dtype}
    if class_name.endswith("Conv2d"):
        k = np.shape(node["parameters"]["weight"])[-1]
        return {"kernel_size": (k, k), "stride": (1, 1), "padding": ((k - 1) // 2,) * 2, "padding_mode": "zeros"}
    return {}


def network(class_name: str, state_dict: Mapping[str, np.ndarray], bfloat16_stages: Sequence[int] = (),
            **wrapper_attributes: Any) -> Any:
    """The pickled form of an R3GAN `training.networks.Generator` / `Discriminator` with this state dict."""
    generator = class_name.endswith("Generator")
    tree = w.state_dict_tree(state_dict, {"Kernel"})

    def build(name, node, class_name, stage=None):
        modules = {child: build(child, sub, _class_name(child, sub, generator),
                                int(child) if name == "MainLayers" else stage)
                   for child, sub in node.get("modules", {}).items()}
        dtype = TORCH_DTYPES["bfloat16" if stage in bfloat16_stages else "float32"]
        return torch_module(class_name, node.get("parameters", {}), node.get("buffers", {}), modules,
                            **_attributes(class_name, node, dtype))

    model = build("Model", tree["modules"]["Model"], f"R3GAN.Networks.{'Generator' if generator else 'Discriminator'}")
    return torch_module(class_name, modules={"Model": model}, **wrapper_attributes)


def optimizer_state(count: int) -> dict:
    """A torch Adam state_dict over `count` parameters, as the snapshot's *_opt_state holds."""
    state = {i: {"step": w.tensor(np.array(3.0, np.float32)), "exp_avg": w.tensor(np.zeros(2, np.float32)),
                 "exp_avg_sq": w.tensor(np.ones(2, np.float32))} for i in range(count)}
    group = {"lr": 2e-4, "betas": (0, 0.99), "eps": 1e-8, "weight_decay": 0, "amsgrad": False, "maximize": False,
             "foreach": None, "capturable": False, "differentiable": False, "fused": None, "params": list(range(count))}
    return {"state": state, "param_groups": [group]}
