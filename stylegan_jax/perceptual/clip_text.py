"""CLIP's text transformer as a Flax module, and its weights from an open_clip or OpenAI state dict.

StyleGAN-T conditions on both outputs: the pooled, projected caption embedding [N, embed_dim] and the
per-token features [N, context_length, width] after the final LayerNorm.

Architecture: token embedding plus a learned positional embedding; `layers` pre-LayerNorm residual
blocks, each a causal multi-head self-attention (one fused q/k/v projection, as torch's
MultiheadAttention) and an MLP of width 4*width with QuickGELU (OpenAI's weights) or exact GELU (most
open_clip weights); a final LayerNorm; the feature at the end-of-text token (the largest id in each row)
times `text_projection`. LayerNorms use eps 1e-5.

Weight names read (open_clip's CLIP and OpenAI's, optionally under `text.`, `module.` or `state_dict.`):
`token_embedding.weight` [vocab, width], `positional_embedding` [context, width],
`transformer.resblocks.{i}.{ln_1,ln_2}.{weight,bias}`, `...attn.in_proj_{weight,bias}` ([3*width, width]),
`...attn.out_proj.{weight,bias}`, `...mlp.c_fc.{weight,bias}`, `...mlp.c_proj.{weight,bias}`,
`ln_final.{weight,bias}` and `text_projection` [width, embed_dim]. The image tower (`visual.*`),
`logit_scale` and the like are ignored.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.perceptual import weight_files

LN_EPS = 1e-5
MLP_RATIO = 4
PRECISION = jax.lax.Precision.HIGHEST
_IGNORED_PREFIXES = ("visual.",)
CHECKPOINT_WRAPPERS = ("", "state_dict.", "module.", "state_dict.module.")  # of training checkpoints


@dataclasses.dataclass(frozen=True)
class CLIPTextConfig:
    """Sizes of a CLIP text tower; quick_gelu selects QuickGELU (OpenAI weights) over exact GELU."""

    width: int
    heads: int
    layers: int
    embed_dim: int
    vocab_size: int = 49408
    context_length: int = 77
    quick_gelu: bool = True


VIT_L_14 = CLIPTextConfig(width=768, heads=12, layers=12, embed_dim=768)
VIT_B_32 = CLIPTextConfig(width=512, heads=8, layers=12, embed_dim=512)
PRESETS = {"ViT-L-14": VIT_L_14, "ViT-B-32": VIT_B_32}


def text_config(preset: str, sizes: tuple[int, ...] = ()) -> CLIPTextConfig:
    """The text tower of a CLIP preset, or of (width, heads, layers, embed_dim) `sizes` when given."""
    if not sizes:
        return PRESETS[preset]
    width, heads, layers, embed_dim = (int(v) for v in sizes)
    return CLIPTextConfig(width=width, heads=heads, layers=layers, embed_dim=embed_dim)


def quick_gelu(x: jax.Array) -> jax.Array:
    """OpenAI CLIP's GELU approximation x * sigmoid(1.702 x)."""
    return x * jax.nn.sigmoid(1.702 * x)


def layer_norm(name: str) -> nn.LayerNorm:
    """CLIP's LayerNorm (torch's epsilon and two-pass variance)."""
    return nn.LayerNorm(epsilon=LN_EPS, use_fast_variance=False, name=name)


def _dense(features: int, name: str) -> nn.Dense:
    return nn.Dense(features, precision=PRECISION, name=name)


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused q/k/v projection (torch's MultiheadAttention); when `causal`,
    position i attends to positions <= i only (the text tower)."""

    width: int
    heads: int
    causal: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch, length, _ = x.shape
        head_dim = self.width // self.heads
        q, k, v = jnp.split(_dense(3 * self.width, "in_proj")(x), 3, axis=-1)
        q, k, v = (t.reshape(batch, length, self.heads, head_dim) for t in (q, k, v))
        logits = jnp.einsum("bqhd,bkhd->bhqk", q / math.sqrt(head_dim), k, precision=PRECISION)
        if self.causal:
            logits = jnp.where(jnp.tril(jnp.ones((length, length), bool)), logits, -jnp.inf)
        weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(v.dtype)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v, precision=PRECISION).reshape(batch, length, self.width)
        return _dense(self.width, "out_proj")(out)


class ResidualBlock(nn.Module):
    """Pre-LayerNorm transformer block of both towers: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    width: int
    heads: int
    quick_gelu: bool
    causal: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x + SelfAttention(self.width, self.heads, self.causal, name="attn")(layer_norm("ln_1")(x))
        h = _dense(MLP_RATIO * self.width, "c_fc")(layer_norm("ln_2")(x))
        h = quick_gelu(h) if self.quick_gelu else jax.nn.gelu(h, approximate=False)
        return x + _dense(self.width, "c_proj")(h)


class CLIPTextTower(nn.Module):
    """CLIP's text encoder: int tokens [N, context_length] -> pooled projected embedding [N, embed_dim].

    With `return_tokens=True` it returns (pooled, per-token features [N, context_length, width] after ln_final).
    The embedding is not normalised; CLIP's similarities normalise it first.
    """

    config: CLIPTextConfig

    @nn.compact
    def __call__(self, tokens: jax.Array, return_tokens: bool = False) -> jax.Array | tuple[jax.Array, jax.Array]:
        cfg = self.config
        if cfg.width % cfg.heads:
            raise ValueError(f"CLIP text tower: width {cfg.width} is not divisible by heads {cfg.heads}")
        if tokens.ndim != 2 or tokens.shape[1] > cfg.context_length:
            raise ValueError(f"CLIP text tower: tokens must be [N, <= {cfg.context_length}], got {tokens.shape}")
        x = nn.Embed(cfg.vocab_size, cfg.width, embedding_init=nn.initializers.normal(0.02),
                     name="token_embedding")(tokens)
        positions = self.param("positional_embedding", nn.initializers.normal(0.01),
                               (cfg.context_length, cfg.width))
        x = x + positions[:tokens.shape[1]]
        for i in range(cfg.layers):
            x = ResidualBlock(cfg.width, cfg.heads, cfg.quick_gelu, causal=True, name=f"resblocks_{i}")(x)
        features = layer_norm("ln_final")(x)
        projection = self.param("text_projection", nn.initializers.normal(cfg.width ** -0.5),
                                (cfg.width, cfg.embed_dim))
        pooled = features[jnp.arange(tokens.shape[0]), jnp.argmax(tokens, axis=-1)]
        pooled = jnp.matmul(pooled, projection, precision=PRECISION)
        return (pooled, features) if return_tokens else pooled


def _resolve_config(preset_or_config: str | CLIPTextConfig) -> tuple[str, CLIPTextConfig]:
    if isinstance(preset_or_config, CLIPTextConfig):
        return "CLIP text tower", preset_or_config
    if preset_or_config in PRESETS:
        return f"CLIP {preset_or_config} text tower", PRESETS[preset_or_config]
    raise ValueError(f"unknown CLIP text preset {preset_or_config!r} (known: {', '.join(PRESETS)}) "
                     "or pass a CLIPTextConfig")


def _text_prefix(tensors: dict[str, np.ndarray], source: str) -> str:
    """The prefix of the text tower's names: '' for a plain CLIP state dict, 'text.' for open_clip's CustomTextCLIP."""
    suffix = "token_embedding.weight"
    prefixes = [name[:-len(suffix)] for name in tensors if name.endswith(suffix)]
    prefixes = [p for p in prefixes if not p.startswith(_IGNORED_PREFIXES)
                and any(p in (wrapper, wrapper + "text.") for wrapper in CHECKPOINT_WRAPPERS)]
    if len(prefixes) != 1:
        found = "none" if not prefixes else ", ".join(p + suffix for p in prefixes)
        raise ValueError(f"{source}: expected one tensor {suffix} (found {found}); not a CLIP state dict")
    return prefixes[0]


BLOCK_TENSORS = frozenset({"ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias", "attn.in_proj_weight",
                           "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias", "mlp.c_fc.weight",
                           "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias", "attn_mask"})


class TowerTensors:
    """A CLIP tower's tensors under `prefix`, read with one-line errors naming the tensor (text and image towers)."""

    def __init__(self, tensors: dict[str, np.ndarray], prefix: str, label: str, source: str):
        self.tensors, self.prefix, self.label, self.source = tensors, prefix, label, source

    def fetch(self, name: str) -> np.ndarray:
        """The tensor `prefix + name` as float32."""
        if self.prefix + name not in self.tensors:
            raise ValueError(f"{self.source}: missing tensor {self.prefix + name} of the {self.label}")
        return np.asarray(self.tensors[self.prefix + name], np.float32)

    def shaped(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """fetch(name), which must have `shape`."""
        value = self.fetch(name)
        if value.shape != shape:
            raise ValueError(f"{self.source}: {self.prefix + name} has shape {value.shape}, expected {shape} for "
                             f"the {self.label}")
        return value

    def count_layers(self, unsupported: tuple[str, ...]) -> int:
        """The number of residual blocks; refuses block tensors of other variants and the `unsupported` names."""
        block = re.compile(re.escape(self.prefix) + r"transformer\.resblocks\.(\d+)\.(.+)")
        layers = 0
        for name in self.tensors:
            match = block.fullmatch(name)
            if match:
                layers = max(layers, int(match.group(1)) + 1)
                if match.group(2) not in BLOCK_TENSORS:  # e.g. layer scale or q/k norms: a block this module lacks
                    raise ValueError(f"{self.source}: unsupported tensor {name} (the {self.label} has plain CLIP blocks)")
        for extra in unsupported:
            if self.prefix + extra in self.tensors:
                raise ValueError(f"{self.source}: unsupported tensor {self.prefix + extra} (the {self.label} has "
                                 "plain CLIP pooling)")
        return layers

    def check_config(self, found: dict, config, tower: str) -> None:
        """Each size read from the file (None: not readable) must equal the config's."""
        for field, value in found.items():
            if value is not None and value != getattr(config, field):
                raise ValueError(f"{self.source}: the file's {tower} tower has {field} {value}, "
                                 f"the {self.label} expects {getattr(config, field)}")

    def resblock(self, index: int, width: int) -> dict:
        """Flax params of residual block `index` (torch's [out, in] weights transposed)."""
        b = f"transformer.resblocks.{index}."

        def dense(name: str, out: int, inp: int) -> dict:
            return {"kernel": self.shaped(f"{b}{name}.weight", (out, inp)).T,
                    "bias": self.shaped(f"{b}{name}.bias", (out,))}

        def norm(name: str) -> dict:
            return {"scale": self.shaped(f"{b}{name}.weight", (width,)), "bias": self.shaped(f"{b}{name}.bias", (width,))}

        return {"ln_1": norm("ln_1"), "ln_2": norm("ln_2"),
                "attn": {"in_proj": {"kernel": self.shaped(f"{b}attn.in_proj_weight", (3 * width, width)).T,
                                     "bias": self.shaped(f"{b}attn.in_proj_bias", (3 * width,))},
                         "out_proj": dense("attn.out_proj", width, width)},
                "c_fc": dense("mlp.c_fc", MLP_RATIO * width, width),
                "c_proj": dense("mlp.c_proj", width, MLP_RATIO * width)}


def clip_text_params(tensors: dict[str, np.ndarray], preset_or_config: str | CLIPTextConfig,
                     source: str = "CLIP weights") -> tuple[CLIPTextTower, dict]:
    """The module and its Flax params from open_clip/OpenAI-named tensors, checked against the preset."""
    label, config = _resolve_config(preset_or_config)
    t = TowerTensors(tensors, _text_prefix(tensors, source), label, source)
    t.check_config(_text_sizes(t), config, "text")
    w = config.width
    params: dict = {
        "token_embedding": {"embedding": t.shaped("token_embedding.weight", (config.vocab_size, w))},
        "positional_embedding": t.shaped("positional_embedding", (config.context_length, w)),
        "ln_final": {"scale": t.shaped("ln_final.weight", (w,)), "bias": t.shaped("ln_final.bias", (w,))},
        "text_projection": t.shaped("text_projection", (w, config.embed_dim)),
        **{f"resblocks_{i}": t.resblock(i, w) for i in range(config.layers)},
    }
    return CLIPTextTower(config), params


def _text_sizes(t: TowerTensors) -> dict[str, int | None]:
    """The text tower's sizes that its tensors tell (None where a tensor has the wrong rank)."""
    def dim(name: str, axis: int) -> int | None:  # `shaped` reports a wrong rank later
        shape = t.fetch(name).shape
        return shape[axis] if len(shape) == 2 else None

    return {"width": dim("token_embedding.weight", 1),
            "layers": t.count_layers(("cls_emb", "text_projection.weight", "text_projection.bias")),
            "vocab_size": dim("token_embedding.weight", 0), "context_length": dim("positional_embedding", 0),
            "embed_dim": dim("text_projection", 1)}


def sized_text_tower(tensors: dict[str, np.ndarray], heads: int, quick_gelu: bool,
                     source: str = "CLIP weights") -> tuple[CLIPTextTower, dict]:
    """Like clip_text_params, with the sizes read from the tensors and the heads and activation given (a pickled
    CLIP model records those two as module attributes)."""
    sizes = _text_sizes(TowerTensors(tensors, _text_prefix(tensors, source), "CLIP text tower", source))
    if None in sizes.values() or sizes["width"] % heads:
        raise ValueError(f"{source}: the CLIP text tower's sizes {sizes} do not fit {heads} attention heads")
    return clip_text_params(tensors, CLIPTextConfig(heads=heads, quick_gelu=quick_gelu, **sizes), source)


def load_clip_text(path: str | os.PathLike, preset_or_config: str | CLIPTextConfig = "ViT-L-14"
                   ) -> tuple[CLIPTextTower, dict]:
    """(module, {'params': ...}) of the text tower in an open_clip/OpenAI weights file (.pt/.pth/.bin zip, .npz).

    Width, layers, vocabulary, context and embed_dim are read from the file and must equal the preset's;
    heads and the activation (`quick_gelu`) are not recorded in a state dict and come from the preset.
    """
    path = weight_files.existing_file(path)
    module, params = clip_text_params(weight_files.read_tensors(path), preset_or_config, source=str(path))
    return module, {"params": jax.tree_util.tree_map(jnp.asarray, params)}
