"""Style mixing (StyleGAN paper, Figure 3): rows take some of their ws from the column seeds."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import numpy as np

from stylegan_jax.images import image_grid
from stylegan_jax.networks.generation import require_w_space
from stylegan_jax.sampling.parsing import parse_range
from stylegan_jax.sampling.render import DEFAULT_BATCH_SIZE, compute_ws, generate_images


def style_ranges(num_ws: int, coarse_end: int = 4, middle_end: int = 8) -> dict[str, list[int]]:
    """The paper's 'coarse', 'middle' and 'fine' ws indices (with StyleGAN2 blocks: 4-8px, 16-32px, 64px up)."""
    return {"coarse": list(range(0, min(coarse_end, num_ws))),
            "middle": list(range(min(coarse_end, num_ws), min(middle_end, num_ws))),
            "fine": list(range(min(middle_end, num_ws), num_ws))}


def parse_styles(text: str | Sequence[int], num_ws: int,
                 ranges: Mapping[str, Sequence[int]] | None = None) -> list[int]:
    """ws indices from '0-6', '0,2,4' or names of `ranges` (default style_ranges), e.g. 'coarse,middle'."""
    ranges = style_ranges(num_ws) if ranges is None else ranges
    indices: list[int] = []
    for part in ([text] if not isinstance(text, str) else text.split(",")):
        if isinstance(part, str) and part.strip() in ranges:
            indices.extend(ranges[part.strip()])
        else:
            indices.extend(parse_range(part))
    if not indices:
        raise ValueError(f"no style layers selected by {text!r}")
    bad = [i for i in indices if not 0 <= i < num_ws]
    if bad:
        raise ValueError(f"style layer {bad[0]} is out of range: the generator has ws 0 to {num_ws - 1}")
    return sorted(set(indices))


def mix_ws(row_ws: np.ndarray, col_ws: np.ndarray, col_styles: Sequence[int]) -> np.ndarray:
    """[R, C, num_ws, w_dim]: row r's ws with the `col_styles` entries taken from column c's ws."""
    mixed = np.repeat(np.asarray(row_ws)[:, None], len(col_ws), axis=1)
    mixed[:, :, list(col_styles)] = np.asarray(col_ws)[None, :, list(col_styles)]
    return mixed


@dataclasses.dataclass
class StyleMix:
    """Images keyed (row_seed, col_seed) — (s, s) being seed s unmixed — and the annotated grid."""

    images: dict[tuple[int, int], np.ndarray]
    grid: np.ndarray


def style_mixing(G: nn.Module, variables: Any, row_seeds: Sequence[int], col_seeds: Sequence[int],
                 col_styles: Sequence[int], *, truncation_psi: float = 1.0, class_idx: int | None = None,
                 noise_mode: str = "const", batch_size: int = DEFAULT_BATCH_SIZE,
                 devices: Sequence[jax.Device] | None = None) -> StyleMix:
    """The style-mixing figure: a row per row seed, a column per column seed, their seeds' images as headers."""
    require_w_space(G, "style mixing")
    seeds = list(dict.fromkeys([*row_seeds, *col_seeds]))
    ws = compute_ws(G, variables, seeds, class_idx=class_idx, truncation_psi=truncation_psi,
                    batch_size=batch_size, devices=devices)
    ws_of = dict(zip(seeds, ws))
    mixed = mix_ws(np.stack([ws_of[s] for s in row_seeds]), np.stack([ws_of[s] for s in col_seeds]), col_styles)
    render = dict(noise_mode=noise_mode, batch_size=batch_size, devices=devices)
    plain = generate_images(G, variables, ws=ws, **render)
    mixes = generate_images(G, variables, ws=mixed.reshape(-1, *ws.shape[1:]), **render)
    images = {(s, s): image for s, image in zip(seeds, plain)}
    images.update({(r, c): mixes[i * len(col_seeds) + j]
                   for i, r in enumerate(row_seeds) for j, c in enumerate(col_seeds)})
    return StyleMix(images, _annotated_grid(images, row_seeds, col_seeds))


def _annotated_grid(images: Mapping[tuple[int, int], np.ndarray], row_seeds: Sequence[int],
                    col_seeds: Sequence[int]) -> np.ndarray:
    """Column seeds along the top, row seeds down the left, mixes inside, a black top-left corner."""
    blank = np.zeros_like(next(iter(images.values())))
    cells = [blank] + [images[(c, c)] for c in col_seeds]
    for r in row_seeds:
        cells += [images[(r, r)]] + [images[(r, c)] for c in col_seeds]
    return image_grid(np.stack(cells), len(col_seeds) + 1, len(row_seeds) + 1)
