"""Latent directions in W: closed-form factorisation (SeFa) of the style affines, and moving ws along one."""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Sequence

import flax.linen as nn
import numpy as np

_SG2_BLOCK = re.compile(r"^b(\d+)$")
_SG3_LAYER = re.compile(r"^L(\d+)_\d+_\d+$")


@dataclasses.dataclass(frozen=True)
class StyleLayer:
    """A synthesis layer modulated by one w: its parameter path, the index of that w, and whether it is a toRGB."""

    path: tuple[str, ...]
    ws_index: int
    is_torgb: bool


def style_layers(G: nn.Module, params: Any) -> list[StyleLayer]:
    """The style-modulated layers of a StyleGAN2 or StyleGAN3 synthesis network, in ws order."""
    synthesis = params["synthesis"]
    blocks = sorted((int(m.group(1)), name) for name in synthesis if (m := _SG2_BLOCK.match(name)))
    if blocks:
        layers, ws_index = [], 0
        for _, name in blocks:
            convs = [conv for conv in ("conv0", "conv1") if conv in synthesis[name]]
            layers += [StyleLayer(("synthesis", name, conv), ws_index + i, False) for i, conv in enumerate(convs)]
            if "torgb" in synthesis[name]:
                layers.append(StyleLayer(("synthesis", name, "torgb"), ws_index + len(convs), True))
            ws_index += len(convs)
        return layers
    indexed = sorted((int(m.group(1)), name) for name in synthesis if (m := _SG3_LAYER.match(name)))
    if not indexed:
        raise ValueError("no StyleGAN2 blocks (b4, b8, ...) or StyleGAN3 layers (L0_..) in params['synthesis']")
    # By position: StyleGAN-XL's superresolution stages skip the numbers of the stem's dropped layers.
    return [StyleLayer(("synthesis", name), i + 1, i == G.num_ws - 2) for i, (_, name) in enumerate(indexed)]


def sefa(G: nn.Module, variables: Any, ws_indices: Sequence[int] | None = None,
         include_torgb: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """SeFa (Shen & Zhou, 2021): the eigenvectors of A^T A, A stacking the affines of the chosen layers.

    Each layer's affine weight is [channels, w_dim]; every row is normalised to unit length before
    stacking. Returns (directions [w_dim, w_dim], one unit direction per row, and their eigenvalues),
    strongest first. `ws_indices` limits the layers to those fed by these ws (default: all).
    """
    chosen = [layer for layer in style_layers(G, variables["params"])
              if (ws_indices is None or layer.ws_index in ws_indices) and (include_torgb or not layer.is_torgb)]
    if not chosen:
        raise ValueError(f"no style layer is fed by ws {list(ws_indices or [])}")
    weights = []
    for layer in chosen:
        node = variables["params"]
        for key in layer.path:
            node = node[key]
        weight = np.asarray(node["affine"]["weight"], np.float64)
        weights.append(weight / np.linalg.norm(weight, axis=1, keepdims=True))
    stacked = np.concatenate(weights)
    eigenvalues, eigenvectors = np.linalg.eigh(stacked.T @ stacked)
    order = np.argsort(eigenvalues)[::-1]
    return eigenvectors[:, order].T.astype(np.float32), eigenvalues[order]


def move_ws(ws: np.ndarray, direction: np.ndarray, strength: float,
            ws_indices: Sequence[int] | None = None) -> np.ndarray:
    """ws [..., num_ws, w_dim] moved by `strength` along the unit `direction`, at ws_indices only (default: all)."""
    ws = np.array(ws, np.float32)
    direction = np.asarray(direction, np.float32)
    step = strength * direction / np.linalg.norm(direction)
    indices = slice(None) if ws_indices is None else list(ws_indices)
    ws[..., indices, :] += step
    return ws
