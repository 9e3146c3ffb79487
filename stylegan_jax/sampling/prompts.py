"""Prompts -> the conditioning of a text-conditional (StyleGAN-T) generator: CLIP's tokenizer and text tower,
taken from the training run that used them or from a CLIP weights file."""
from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.convert.official_pickle import read_official_pickle
from stylegan_jax.networks import stylegan_t
from stylegan_jax.perceptual import clip_text
from stylegan_jax.sampling.loading import is_pickle

FROZEN_TEXT_TOWER = "clip_text"  # where a StyleGAN-T run keeps its text tower (D's 'frozen' collection)


@dataclasses.dataclass(frozen=True)
class PromptEncoder:
    """A CLIP text tower with its parameters: prompts -> unit-length embeddings [N, embed_dim], as G sees them."""

    tower: clip_text.CLIPTextTower
    params: Any

    @property
    def embed_dim(self) -> int:
        """The width of the embeddings."""
        return self.tower.config.embed_dim

    @property
    def context_length(self) -> int:
        """Token ids per caption (the width of a captioned dataset's labels)."""
        return self.tower.config.context_length

    def embed_tokens(self, params: Any, tokens: jax.Array) -> jax.Array:
        """Unit embeddings of token ids [N, context_length] (any dtype, e.g. a dataset's float labels); traceable."""
        return embed_tokens(self.tower, params, tokens)

    def __call__(self, prompts: Sequence[str]) -> np.ndarray:
        from stylegan_jax.perceptual.clip_tokenizer import tokenize

        return np.asarray(_embed(self.tower, self.params, tokenize(list(prompts), self.context_length)))


def embed_tokens(tower: clip_text.CLIPTextTower, params: Any, tokens: jax.Array) -> jax.Array:
    """The unit-length text embeddings [N, embed_dim] that condition StyleGAN-T, of token ids [N, context_length]."""
    return stylegan_t.normalize_text_embedding(tower.apply({"params": params}, jnp.asarray(tokens).astype(jnp.int32)))


_embed = jax.jit(embed_tokens, static_argnums=0)


def prompt_encoder(network: str | os.PathLike, step: int | None = None, clip: str | os.PathLike | None = None,
                   clip_model: str = "ViT-L-14") -> PromptEncoder:
    """The text tower of a CLIP weights file `clip` (open_clip/OpenAI, of preset `clip_model`) or, without one,
    the frozen tower that the training run folder `network` trained with (at `step`, default the latest) or
    that the official StyleGAN-T snapshot `network` holds in its generator."""
    if clip is not None:
        if clip_model not in clip_text.PRESETS:
            raise ValueError(f"CLIP model must be one of {sorted(clip_text.PRESETS)}, got {clip_model!r}")
        tower, variables = clip_text.load_clip_text(clip, clip_model)
        return PromptEncoder(tower, variables["params"])
    from stylegan_jax import checkpoint

    path = pathlib.Path(network).expanduser()
    if is_pickle(path) and step is None:
        return _snapshot_prompt_encoder(path)
    if not path.is_dir() or not (path / checkpoint.CHECKPOINT_DIR).is_dir():
        raise ValueError(f"prompts need CLIP's text tower: give the CLIP weights file, or a StyleGAN-T training run "
                         f"folder or official snapshot as the network (not {os.fspath(network)!r})")

    _, meta = checkpoint.read_meta(os.fspath(path), step)
    text = meta["config"].get("text", {})
    if meta["config"].get("model", {}).get("arch") != "stylegan_t":
        raise ValueError(f"the run in {os.fspath(path)!r} is not a StyleGAN-T run: it has no text tower")
    config = clip_text.text_config(text["clip"], tuple(text.get("clip_sizes", ())))
    params = checkpoint.load_frozen(os.fspath(path), FROZEN_TEXT_TOWER, step)
    return PromptEncoder(clip_text.CLIPTextTower(config), params)


def _snapshot_prompt_encoder(path: pathlib.Path) -> PromptEncoder:
    """The CLIP text tower inside the generator (G_ema, else G) of an official StyleGAN-T snapshot."""
    snapshot = read_official_pickle(path)
    network = snapshot.get("G_ema") or snapshot.get("G")
    if network is None or network.text_tower is None:
        raise ValueError(f"{os.fspath(path)!r} holds no StyleGAN-T generator with a CLIP text tower: give --clip FILE")
    tensors = stylegan_t.split_clip_state_dict(network.state_dict)[1]
    tower, params = clip_text.sized_text_tower(tensors, **network.text_tower, source=os.fspath(path))
    return PromptEncoder(tower, jax.tree_util.tree_map(jnp.asarray, params))


def is_text_conditional(G: nn.Module) -> bool:
    """Whether G is a StyleGAN-T generator conditioned on text embeddings."""
    return isinstance(G, stylegan_t.Generator) and G.c_dim > 0


def prompt_conditioning(G: nn.Module, encoder: PromptEncoder, prompts: Sequence[str]) -> np.ndarray:
    """G's conditioning [len(prompts), c_dim] for the prompts: their unit CLIP text embeddings (widths checked)."""
    if not is_text_conditional(G):
        raise ValueError("prompts need a text-conditional StyleGAN-T generator; this one is not")
    if not prompts:
        raise ValueError("no prompt given")
    if G.c_dim != encoder.embed_dim:
        raise ValueError(f"the generator takes {G.c_dim}-wide text embeddings but the CLIP text tower gives "
                         f"{encoder.embed_dim}-wide ones")
    return encoder(prompts)
