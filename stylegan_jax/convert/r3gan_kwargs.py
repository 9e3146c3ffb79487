"""Recovers the constructor arguments of an R3GAN network from its state dict.

R3GAN snapshots pickle their networks without constructor arguments; every argument that shapes
the network is readable from the parameter shapes (widths, blocks, cardinalities, expansion,
kernel size, label embedding) and the resampling kernel buffer. Which stages compute in bfloat16
is not in the state dict and is given by the caller.
"""
from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np

GENERATOR = "training.networks.Generator"
DISCRIMINATOR = "training.networks.Discriminator"
DEFAULT_EXPANSION_FACTOR = 2  # the official presets; irrelevant to a network without residual blocks
DEFAULT_KERNEL_SIZE = 3
DEFAULT_RESAMPLING_FILTER = [1, 2, 1]


def r3gan_init_kwargs(class_name: str, state_dict: Mapping[str, np.ndarray], fp16_stages: Sequence[int]) -> dict:
    """The official constructor arguments (training.networks wrapper) of an R3GAN G or D state dict."""
    if class_name not in (GENERATOR, DISCRIMINATOR):
        raise ValueError(f"not an R3GAN network class: {class_name!r}")
    shapes = {name: tuple(np.shape(value)) for name, value in state_dict.items()}
    generator = class_name == GENERATOR
    num_stages = len({m.group(1) for m in map(re.compile(r"Model\.MainLayers\.(\d+)\.").match, shapes) if m})
    if num_stages == 0:
        raise ValueError(f"{class_name}: the state dict has no Model.MainLayers")
    blocks = [_block_indices(shapes, s) for s in range(num_stages)]
    embedding = shapes.get("Model.EmbeddingLayer.weight", (0, 0))
    widths = _generator_widths(shapes, num_stages) if generator else _discriminator_widths(shapes, blocks)
    kwargs = dict(WidthPerStage=widths, CardinalityPerStage=[_cardinality(shapes, s, b) for s, b in enumerate(blocks)],
                  BlocksPerStage=[len(b) for b in blocks], FP16Stages=sorted(fp16_stages), c_dim=embedding[1],
                  img_resolution=4 * 2 ** (num_stages - 1))
    first_block = next((_block(s, b[0]) for s, b in enumerate(blocks) if b), None)
    if first_block is not None:
        expand, mix = (shapes[f"{first_block}.LinearLayer{i}.Layer.weight"] for i in (1, 2))
        kwargs.update(ExpansionFactor=expand[0] // expand[1], KernelSize=mix[2])
    else:
        kwargs.update(ExpansionFactor=DEFAULT_EXPANSION_FACTOR, KernelSize=DEFAULT_KERNEL_SIZE)
    if embedding[1]:
        kwargs["ConditionEmbeddingDimension"] = embedding[0]
    if generator:
        kwargs["NoiseDimension"] = shapes["Model.MainLayers.0.Layers.0.LinearLayer.weight"][1] - embedding[0]
    kernels = [name for name in shapes if name.endswith(".Resampler.Kernel")]
    if kernels:
        kwargs["ResamplingFilter"] = resampling_filter(state_dict[kernels[0]])
    return kwargs


def _block(stage: int, index: int) -> str:
    return f"Model.MainLayers.{stage}.Layers.{index}"


def _block_indices(shapes: Mapping[str, tuple], stage: int) -> list[int]:
    pattern = re.compile(rf"Model\.MainLayers\.{stage}\.Layers\.(\d+)\.LinearLayer1\.Layer\.weight$")
    return sorted(int(m.group(1)) for m in map(pattern.match, shapes) if m)


def _cardinality(shapes: Mapping[str, tuple], stage: int, blocks: list[int]) -> int:
    if not blocks:
        return 1
    out_channels, in_per_group = shapes[f"{_block(stage, blocks[0])}.LinearLayer2.Layer.weight"][:2]
    return out_channels // in_per_group


def _generator_widths(shapes: Mapping[str, tuple], num_stages: int) -> list[int]:
    """Stage 0: the basis; later stages: the 1x1 conv before upsampling, if the width changes."""
    widths = [shapes["Model.MainLayers.0.Layers.0.Basis"][0]]
    for s in range(1, num_stages):
        widths.append(shapes.get(f"{_block(s, 0)}.LinearLayer.Layer.weight", (widths[-1],))[0])
    return widths


def _discriminator_widths(shapes: Mapping[str, tuple], blocks: list[list[int]]) -> list[int]:
    """Stage 0: the conv from RGB; later stages: the 1x1 conv after the previous downsampling."""
    widths = [shapes["Model.ExtractionLayer.Layer.weight"][0]]
    for s in range(1, len(blocks)):
        transition = _block(s - 1, len(blocks[s - 1]))
        widths.append(shapes.get(f"{transition}.LinearLayer.Layer.weight", (widths[-1],))[0])
    return widths


def resampling_filter(kernel: np.ndarray) -> list[int | float]:
    """The filter f whose kernel is the normalised outer product of f convolved with [1, 1].

    Scaled so that its first tap is 1 (the kernel is normalised, so the scale is free); taps within
    1e-4 of an integer are rounded to it, so the default kernel gives [1, 2, 1].
    """
    kernel = np.asarray(kernel, np.float64)
    taps = kernel[0] / kernel[0, 0]  # a row of the outer product: the 1-D taps up to scale
    f = [taps[0]]
    for tap in taps[1:-1]:
        f.append(tap - f[-1])  # undo the convolution with [1, 1]
    return [int(round(v)) if abs(v - round(v)) < 1e-4 else float(v) for v in f]
