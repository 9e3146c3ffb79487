"""Recovers the constructor arguments of an official StyleGAN-T generator from its pickled modules.

StyleGAN-T's snapshots (dill) pickle `networks.generator.Generator` by value: a plain torch module
without constructor arguments. The Generator keeps z_dim, conditional, img_resolution, img_channels
and train_mode as attributes; the synthesis kwargs are read off its SynthesisNetwork and blocks
(attributes, weight shapes, the resampling filter buffer); the mapping network's from its MLP. The
CLIP text tower inside the mapping network records its attention heads and activation only as module
attributes; `text_tower_settings` reads them for the CLIP loader, which gets the rest from the weights.
Only `layer_scale_init` (an initial value the trained weights replace) cannot be recovered.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from stylegan_jax.convert._torch_modules import submodule
from stylegan_jax.networks.stylegan_t import MappingNetwork

GENERATOR = "networks.generator.Generator"


def _attribute(record: Any, name: str, kinds: tuple[type, ...], where: str) -> Any:
    value = record.state.get(name)
    if isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise ValueError(f"{where}.{name}: expected {' or '.join(k.__name__ for k in kinds)}, got {type(value).__name__}")
    return value


def _module(record: Any, path: str) -> Any:
    module = submodule(record, *path.split("."))
    if module is None:
        raise ValueError(f"the StyleGAN-T generator has no module {path!r}")
    return module


def _shape(record: Any, name: str, where: str) -> tuple[int, ...]:
    value = record.state["_parameters"].get(name)
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{where} has no tensor {name!r}")
    return value.shape


def channel_range(widths: dict[int, int]) -> tuple[int, int]:
    """(channel_base, channel_max) that give these block widths by min(channel_base // res, channel_max):
    channel_base the smallest power of two that does, else the smallest integer; ValueError if none does."""
    channel_max = max(widths.values())
    low = max(channel_max * res for res, width in widths.items() if width == channel_max)
    high = min(((width + 1) * res for res, width in widths.items() if width < channel_max), default=None)
    low = max([low, *(width * res for res, width in widths.items() if width < channel_max)])
    power = 1 << (low - 1).bit_length()
    channel_base = power if high is None or power < high else low
    if any(min(channel_base // res, channel_max) != width for res, width in widths.items()):
        raise ValueError(f"no channel_base gives the block widths {widths}")
    return channel_base, channel_max


def stylegan_t_init_kwargs(record: Any) -> dict[str, Any]:
    """Our stylegan_t.Generator kwargs of an official pickled Generator (a ModuleRecord)."""
    where = GENERATOR
    kwargs = {name: _attribute(record, name, kinds, where) for name, kinds in (
        ("z_dim", (int,)), ("conditional", (bool,)), ("img_resolution", (int,)), ("img_channels", (int,)))}
    if "train_mode" in record.state:
        kwargs["train_mode"] = _attribute(record, "train_mode", (str,), where)
    kwargs["synthesis_kwargs"] = _synthesis_kwargs(_module(record, "synthesis"))
    defaults = MappingNetwork.__dataclass_fields__
    mapping = {key: value for key, value in _mapping_kwargs(record).items() if value != defaults[key].default}
    if mapping:
        kwargs["mapping_kwargs"] = mapping
    return kwargs


def _synthesis_kwargs(synthesis: Any) -> dict[str, Any]:
    where = "synthesis"
    resolutions = synthesis.state.get("block_resolutions")
    if not (isinstance(resolutions, list) and resolutions and all(isinstance(r, int) for r in resolutions)):
        raise ValueError("the StyleGAN-T synthesis network has no list of block resolutions")
    blocks = {res: _module(synthesis, f"b{res}") for res in resolutions}
    first = blocks[resolutions[0]]
    convs = _module(first, "convs1").state["_modules"]
    layer, residual = _module(first, "convs1.0"), _module(first, "convs1.1")
    fp16 = [block for block in blocks.values() if _attribute(block, "use_fp16", (bool,), where)]
    kernel = _shape(layer, "weight", f"{where}.b{resolutions[0]}.convs1.0")[-1]
    taps = np.asarray(first.state.get("_buffers", {}).get("resample_filter"), dtype=np.float64)
    if taps.ndim != 2:
        raise ValueError(f"{where}.b{resolutions[0]} has no 2-D resample_filter buffer")
    channel_base, channel_max = channel_range(
        {res: _attribute(block, "out_channels", (int,), f"{where}.b{res}") for res, block in blocks.items()})
    return dict(
        channel_base=channel_base, channel_max=channel_max,
        num_fp16_res=_attribute(synthesis, "num_fp16_res", (int,), where),
        base_mult=int(np.log2(resolutions[0])), num_res_blocks=len(convs) // 2,
        architecture=_attribute(first, "architecture", (str,), where),
        resample_filter=tuple(float(v) for v in taps.sum(axis=0) / taps.sum()),  # setup_filter's outer product, undone
        conv_clamp=_attribute(layer, "conv_clamp", (int, float, type(None)), where),
        fp16_channels_last=any(_attribute(block, "channels_last", (bool,), where) for block in fp16),
        fused_modconv_default=_attribute(first, "fused_modconv_default", (bool, str), where),
        kernel_size=kernel,
        use_noise=_attribute(layer, "use_noise", (bool,), where),
        activation=_attribute(layer, "activation", (str,), where),
        gn_groups=_attribute(_module(residual, "norm"), "num_groups", (int,), where))


def _mapping_kwargs(record: Any) -> dict[str, Any]:
    mapping, where = _module(record, "mapping"), "mapping"
    first = _module(mapping, "mlp.fc0")
    return dict(num_layers=_attribute(_module(mapping, "mlp"), "num_layers", (int,), where),
                activation=_attribute(first, "activation", (str,), where),
                lr_multiplier=float(_attribute(first, "bias_gain", (int, float), where)),
                x_avg_beta=_attribute(mapping, "x_avg_beta", (int, float, type(None)), where))


def text_tower_settings(record: Any) -> dict[str, Any] | None:
    """{'heads', 'quick_gelu'} of the CLIP text tower in a pickled StyleGAN-T Generator, or None without one."""
    if submodule(record, "mapping", "clip") is None:
        return None
    block = _module(record, "mapping.clip.model.transformer.resblocks.0")
    activation = _module(block, "mlp.gelu")
    return dict(heads=_attribute(_module(block, "attn"), "num_heads", (int,), "mapping.clip"),
                quick_gelu=type(activation).class_name.endswith("QuickGELU"))
