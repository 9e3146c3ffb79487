"""CLIP's ViT image tower as a Flax module, and its weights from an open_clip or OpenAI state dict.

StyleGAN-T's CLIP guidance embeds generated images with it (ViT-L/14, OpenAI weights) and pulls the
embedding towards the caption's (see `stylegan_jax.perceptual.clip_guidance`).

Architecture: a patch embedding (conv of kernel = stride = patch size, no bias), a learned class
embedding prepended, a learned positional embedding added, `ln_pre`, `layers` pre-LayerNorm residual
blocks (full, unmasked multi-head self-attention with one fused q/k/v projection as torch's
MultiheadAttention; an MLP of width 4*width with QuickGELU for OpenAI's weights or exact GELU), `ln_post`
on the class token and the projection to `embed_dim`. LayerNorms use eps 1e-5.

Weight names read (optionally under `module.` or `state_dict.`): `visual.conv1.weight` [width, 3, p, p],
`visual.class_embedding` [width], `visual.positional_embedding` [grid^2 + 1, width],
`visual.{ln_pre,ln_post}.{weight,bias}`, `visual.transformer.resblocks.{i}.*` (as the text tower's) and
`visual.proj` [width, embed_dim]. The text tower's tensors are ignored.
"""
from __future__ import annotations

import dataclasses
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.perceptual import weight_files
from stylegan_jax.perceptual.clip_text import CHECKPOINT_WRAPPERS, PRECISION, ResidualBlock, TowerTensors, layer_norm
from stylegan_jax.perceptual.vit import PatchProjection

# CLIP's image normalisation (OpenAI's statistics, as timm's OPENAI_CLIP_MEAN / OPENAI_CLIP_STD).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclasses.dataclass(frozen=True)
class CLIPImageConfig:
    """Sizes of a CLIP ViT image tower; quick_gelu selects QuickGELU (OpenAI weights) over exact GELU."""

    width: int
    heads: int
    layers: int
    patch_size: int
    embed_dim: int
    image_size: int = 224
    quick_gelu: bool = True

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.image_size // self.patch_size


VIT_L_14 = CLIPImageConfig(width=1024, heads=16, layers=24, patch_size=14, embed_dim=768)
VIT_B_32 = CLIPImageConfig(width=768, heads=12, layers=12, patch_size=32, embed_dim=512)
PRESETS = {"ViT-L-14": VIT_L_14, "ViT-B-32": VIT_B_32}
SIZED_PATCH_SIZE = 32  # the patches of a tower given by sizes (ViT-B/32's)


def image_config(preset: str, sizes: tuple[int, ...] = ()) -> CLIPImageConfig:
    """The image tower of a CLIP preset, or of (width, heads, layers, embed_dim) `sizes` (32-px patches)."""
    if not sizes:
        return PRESETS[preset]
    width, heads, layers, embed_dim = (int(v) for v in sizes)
    return CLIPImageConfig(width=width, heads=heads, layers=layers, patch_size=SIZED_PATCH_SIZE, embed_dim=embed_dim)


class CLIPImageTower(nn.Module):
    """CLIP's image encoder: NHWC images [N, image_size, image_size, 3], already CLIP-normalised
    (`CLIP_MEAN`, `CLIP_STD` on [0, 1] values) -> embedding [N, embed_dim], not normalised."""

    config: CLIPImageConfig

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        cfg = self.config
        if cfg.width % cfg.heads:
            raise ValueError(f"CLIP image tower: width {cfg.width} is not divisible by heads {cfg.heads}")
        if tuple(images.shape[1:]) != (cfg.image_size, cfg.image_size, 3):
            raise ValueError(f"CLIP image tower: images must be [N, {cfg.image_size}, {cfg.image_size}, 3] "
                             f"(resize them first), got {images.shape}")
        p = cfg.patch_size
        x = PatchProjection(p, cfg.width, use_bias=False, name="conv1")(jnp.asarray(images, jnp.float32))
        batch = x.shape[0]
        x = x.reshape(batch, -1, cfg.width)
        scale = cfg.width ** -0.5
        cls = self.param("class_embedding", nn.initializers.normal(scale), (cfg.width,))
        positions = self.param("positional_embedding", nn.initializers.normal(scale), (cfg.grid ** 2 + 1, cfg.width))
        x = jnp.concatenate([jnp.broadcast_to(cls, (batch, 1, cfg.width)), x], axis=1) + positions
        x = layer_norm("ln_pre")(x)
        for i in range(cfg.layers):
            x = ResidualBlock(cfg.width, cfg.heads, cfg.quick_gelu, name=f"resblocks_{i}")(x)
        pooled = layer_norm("ln_post")(x[:, 0])
        projection = self.param("proj", nn.initializers.normal(scale), (cfg.width, cfg.embed_dim))
        return jnp.matmul(pooled, projection, precision=PRECISION)


def _resolve_config(preset_or_config: str | CLIPImageConfig) -> tuple[str, CLIPImageConfig]:
    if isinstance(preset_or_config, CLIPImageConfig):
        return "CLIP image tower", preset_or_config
    name = preset_or_config.replace("/", "-")
    if name in PRESETS:
        return f"CLIP {name} image tower", PRESETS[name]
    raise ValueError(f"unknown CLIP image preset {preset_or_config!r} (known: {', '.join(PRESETS)}) "
                     "or pass a CLIPImageConfig")


def _visual_prefix(tensors: dict[str, np.ndarray], source: str) -> str:
    suffix = "visual.conv1.weight"
    prefixes = [name[:-len(suffix)] for name in tensors if name.endswith(suffix)]
    prefixes = [p + "visual." for p in prefixes if p in CHECKPOINT_WRAPPERS]
    if len(prefixes) != 1:
        found = "none" if not prefixes else ", ".join(p + "conv1.weight" for p in prefixes)
        raise ValueError(f"{source}: expected one tensor {suffix} (found {found}); not a CLIP ViT state dict")
    return prefixes[0]


def clip_image_params(tensors: dict[str, np.ndarray], preset_or_config: str | CLIPImageConfig,
                      source: str = "CLIP weights") -> tuple[CLIPImageTower, dict]:
    """The module and its Flax params from open_clip/OpenAI-named tensors, checked against the preset."""
    label, config = _resolve_config(preset_or_config)
    t = TowerTensors(tensors, _visual_prefix(tensors, source), label, source)
    layers = t.count_layers(("attn_pool.query", "proj.weight", "ln_post_pool.weight"))
    conv, proj = t.fetch("conv1.weight"), t.fetch("proj")
    t.check_config({"width": conv.shape[0], "patch_size": conv.shape[-1], "layers": layers,
                    "embed_dim": proj.shape[-1] if proj.ndim == 2 else None}, config, "image")
    w, p = config.width, config.patch_size
    params: dict = {
        "conv1": {"kernel": t.shaped("conv1.weight", (w, 3, p, p)).transpose(2, 3, 1, 0)},
        "class_embedding": t.shaped("class_embedding", (w,)),
        "positional_embedding": t.shaped("positional_embedding", (config.grid ** 2 + 1, w)),
        "ln_pre": {"scale": t.shaped("ln_pre.weight", (w,)), "bias": t.shaped("ln_pre.bias", (w,))},
        "ln_post": {"scale": t.shaped("ln_post.weight", (w,)), "bias": t.shaped("ln_post.bias", (w,))},
        "proj": t.shaped("proj", (w, config.embed_dim)),
        **{f"resblocks_{i}": t.resblock(i, w) for i in range(config.layers)},
    }
    return CLIPImageTower(config), params


def load_clip_image(path: str | os.PathLike, preset_or_config: str | CLIPImageConfig = "ViT-L-14"
                    ) -> tuple[CLIPImageTower, dict]:
    """(module, {'params': ...}) of the image tower in an open_clip/OpenAI weights file.

    Width, patch size, layers, grid and embed_dim are checked against the preset; heads and the activation
    (`quick_gelu`) are not recorded in a state dict and come from the preset.
    """
    path = weight_files.existing_file(path)
    module, params = clip_image_params(weight_files.read_tensors(path), preset_or_config, source=str(path))
    return module, {"params": jax.tree_util.tree_map(jnp.asarray, params)}


def clip_normalize(images: jax.Array) -> jax.Array:
    """NHWC [0, 1] RGB images normalised with CLIP's mean and std."""
    return (images - jnp.asarray(CLIP_MEAN, images.dtype)) / jnp.asarray(CLIP_STD, images.dtype)
