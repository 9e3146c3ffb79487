"""Pretrained timm feature networks for projected discriminators (StyleGAN-XL) and StyleGAN-T, loaded as Flax.

`load_timm(arch, path)` reads a timm state dict (.safetensors, or a torch .pth/.bin/.pt zip; the full
classification model's, as downloaded, or a `features_only` model's) and returns the Flax module and its
variables:

* `tf_efficientnet_lite0` .. `lite4`: `module.apply(variables, images)` returns the NHWC feature maps that
  `timm.create_model(arch, features_only=True)` returns (NCHW there) for the same images;
* ViTs (`deit_{tiny,small,base}_distilled_patch16_224`, `vit_small_patch16_224[.dino]`,
  `vit_base_patch16_224`): it returns the tokens after each transformer block, [N, tokens, dim] each.

Images are float NHWC and already normalised by the caller: (x - mean) / std with the NORMALIZATION of
the arch, on values in [0, 1]. ViTs take exactly 224x224 images; EfficientNets take any size.
"""
from __future__ import annotations

import os
import re
from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.perceptual import efficientnet, vit, weight_files

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
INCEPTION = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _vit(embed_dim: int, num_heads: int, prefix_tokens: int) -> vit.VisionTransformer:
    return vit.VisionTransformer(img_size=224, patch_size=16, embed_dim=embed_dim, depth=12,
                                 num_heads=num_heads, prefix_tokens=prefix_tokens)


# The architecture of each supported timm model name (without its `.tag`).
ARCHITECTURES: dict[str, nn.Module] = {
    **{f"tf_efficientnet_{variant}": efficientnet.EfficientNetLite(efficientnet.lite_stages(width, depth))
       for variant, (width, depth) in efficientnet.LITE_MULTIPLIERS.items()},
    "deit_tiny_distilled_patch16_224": _vit(192, 3, prefix_tokens=2),
    "deit_small_distilled_patch16_224": _vit(384, 6, prefix_tokens=2),
    "deit_base_distilled_patch16_224": _vit(768, 12, prefix_tokens=2),
    "vit_small_patch16_224": _vit(384, 6, prefix_tokens=1),
    "vit_base_patch16_224": _vit(768, 12, prefix_tokens=1),
}

# (mean, std) per RGB channel that each network's inputs are normalised with, grouped as StyleGAN-XL does:
# the TF EfficientNets and ViT-B/16 take Inception's [-1, 1]; DeiTs and DINO's ViT-S/16 take ImageNet's.
NORMALIZATION: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    **{f"tf_efficientnet_{variant}": INCEPTION for variant in efficientnet.LITE_MULTIPLIERS},
    "deit_tiny_distilled_patch16_224": IMAGENET,
    "deit_small_distilled_patch16_224": IMAGENET,
    "deit_base_distilled_patch16_224": IMAGENET,
    "vit_small_patch16_224.dino": IMAGENET,
    "vit_small_patch16_224": INCEPTION,  # timm's default (augreg) weights
    "vit_base_patch16_224": INCEPTION,
}

# Tensors of a full timm model that the features do not use: classifier heads and EfficientNet's head conv.
IGNORED = re.compile(r"^(classifier|conv_head|bn2|head|head_dist)\.|(^|\.)num_batches_tracked$")
WRAPPERS = ("model.", "module.", "state_dict.")  # prefixes of checkpoints that wrap the state dict
SAMPLE_SIZE = 64  # of the images used to trace the EfficientNets' parameter shapes (any size works)


def module_for(arch: str) -> nn.Module:
    """The Flax module of a timm model name (a `.tag` such as `.dino` is accepted and dropped)."""
    base = arch.split(".", 1)[0]
    if base not in ARCHITECTURES:
        raise ValueError(f"unknown feature network {arch!r}; supported: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[base]


def _timm_name(path: tuple) -> str:
    """timm's state-dict name of a Flax variable: ('params', 'blocks_2_1', 'conv_dw', 'kernel') ->
    'blocks.2.1.conv_dw.weight'."""
    collection, *modules, leaf = (str(getattr(key, "key", key)) for key in path)
    parts = [m.replace("_", ".") if re.fullmatch(r"blocks(_\d+)+", m) else m for m in modules]
    if collection == "batch_stats":
        leaf = {"mean": "running_mean", "var": "running_var"}[leaf]
    elif modules:
        leaf = {"kernel": "weight", "scale": "weight"}.get(leaf, leaf)
    return ".".join([*parts, leaf])


def _leaf(path: tuple) -> str:
    return getattr(path[-1], "key", path[-1])


def _to_torch_shape(leaf: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    if leaf == "kernel" and len(shape) == 4:  # HWIO -> OIHW
        return (shape[3], shape[2], shape[0], shape[1])
    if leaf == "kernel" and len(shape) == 2:  # [in, out] -> [out, in]
        return (shape[1], shape[0])
    return tuple(shape)


def _from_torch(leaf: str, value: np.ndarray) -> np.ndarray:
    value = np.asarray(value, np.float32)
    if leaf == "kernel" and value.ndim == 4:
        return value.transpose(2, 3, 1, 0)
    if leaf == "kernel" and value.ndim == 2:
        return value.T
    return value


def _strip_wrapper(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    for _ in range(len(WRAPPERS)):
        prefix = next((p for p in WRAPPERS if tensors and all(name.startswith(p) for name in tensors)), None)
        if prefix is None:
            break
        tensors = {name[len(prefix):]: value for name, value in tensors.items()}
    return tensors


def timm_variables(module: nn.Module, tensors: dict[str, np.ndarray], source: str = "weights") -> dict:
    """Flax variables of `module` from a timm state dict; ValueError naming the tensors that do not fit."""
    tensors = {name: value for name, value in _strip_wrapper(tensors).items() if not IGNORED.search(name)}
    size = getattr(module, "img_size", SAMPLE_SIZE)
    expected = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, size, size, 3), jnp.float32))
    expected = {key: value for key, value in expected.items() if key in ("params", "batch_stats")}
    torch_shapes = {_timm_name(path): _to_torch_shape(_leaf(path), leaf.shape)
                    for path, leaf in jax.tree_util.tree_leaves_with_path(expected)}
    given = {name: tuple(np.shape(value)) for name, value in tensors.items()}
    problems = [f"{name} {given.get(name, 'missing')} vs {torch_shapes.get(name, 'unexpected')}"
                for name in sorted(torch_shapes.keys() | given.keys()) if given.get(name) != torch_shapes.get(name)]
    if problems:
        raise ValueError(f"{source} do not fit {type(module).__name__} ({len(problems)} tensor(s) differ, "
                         f"given vs expected): {'; '.join(problems[:5])}")
    variables = jax.tree_util.tree_map_with_path(
        lambda path, _: np.ascontiguousarray(_from_torch(_leaf(path), tensors[_timm_name(path)])), expected)
    return jax.device_put(variables)


def load_timm(arch: str, path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """(module, variables) of timm model `arch` from its state dict at `path` (.safetensors or torch zip).

    `module.apply(variables, images)` takes normalised float NHWC images (see NORMALIZATION) and returns
    the list of feature maps (EfficientNet, NHWC) or of per-block tokens (ViT); see the module docstring.
    """
    module = module_for(arch)
    file = weight_files.existing_file(path)
    variables = timm_variables(module, weight_files.read_tensors(file), source=f"{arch} weights {str(file)!r}")
    return module, variables


def classifier_logits_fn(arch: str) -> Callable[[dict, jax.Array], jax.Array]:
    """`logits_fn(weights, images)` of a timm ViT/DeiT classifier: the class logits of normalised 224x224 NHWC
    images (DeiT distilled: the mean of its two heads, as timm in eval); `weights` from load_timm_classifier."""
    module = module_for(arch)
    if not isinstance(module, vit.VisionTransformer):
        raise ValueError(f"{arch!r} is not a ViT/DeiT classifier; classifier guidance takes one of "
                         f"{', '.join(name for name, m in ARCHITECTURES.items() if isinstance(m, vit.VisionTransformer))}")

    def logits_fn(weights: dict, images: jax.Array) -> jax.Array:
        _, state = module.apply(weights["net"], images, mutable=["intermediates"])
        tokens = state["intermediates"]["normed"][0]
        hp = jax.lax.Precision.HIGHEST
        outs = [jnp.matmul(tokens[:, i], h["kernel"], precision=hp) + h["bias"] for i, h in enumerate(weights["heads"])]
        return sum(outs) / len(outs)

    return logits_fn


def load_timm_classifier(arch: str, path: str | os.PathLike) -> tuple[Callable[[dict, jax.Array], jax.Array], dict]:
    """(logits_fn, weights) of a timm ViT/DeiT classifier read from its state dict (see classifier_logits_fn)."""
    logits_fn = classifier_logits_fn(arch)
    module = module_for(arch)
    file = weight_files.existing_file(path)
    tensors = _strip_wrapper(weight_files.read_tensors(file))
    heads = []
    for name in ("head", "head_dist")[:module.prefix_tokens]:
        if f"{name}.weight" not in tensors or f"{name}.bias" not in tensors:
            raise ValueError(f"{arch} weights {str(file)!r} have no classifier {name}.weight/{name}.bias")
        heads.append({"kernel": tensors[f"{name}.weight"].T.astype(np.float32),
                      "bias": tensors[f"{name}.bias"].astype(np.float32)})
    weights = {"net": timm_variables(module, tensors, source=f"{arch} weights {str(file)!r}"),
               "heads": jax.device_put(heads)}
    return logits_fn, weights


class ProjectionSpec(NamedTuple):
    """How a projected discriminator reads four maps off a network (StyleGAN-XL's `_make_pretrained`)."""

    kind: str                   # 'cnn': feature maps; 'vit': per-block tokens re-assembled into maps
    hooks: tuple[int, ...]      # which outputs of `module.apply` are the four maps (or tokens)
    normalization: tuple[tuple[float, float, float], tuple[float, float, float]]
    features: tuple[int, ...] = ()  # ViT: the read-out convs' widths
    start_index: int = 1        # ViT: prefix tokens dropped (cls, and DeiT's distillation token)


_VIT_READOUT = {192: (24, 48, 96, 192), 384: (48, 96, 192, 384), 768: (96, 192, 384, 768)}


def projection_spec(arch: str) -> ProjectionSpec:
    """The four-scale read-out of `arch` for a projected discriminator: an EfficientNet's last four maps
    (strides 4 to 32); a ViT's blocks 3, 6, 9 and 12, re-assembled at strides 4, 8, 16 and 32."""
    module = module_for(arch)
    stats = NORMALIZATION[arch if arch in NORMALIZATION else arch.split(".", 1)[0]]
    if isinstance(module, vit.VisionTransformer):
        return ProjectionSpec("vit", (2, 5, 8, 11), stats, _VIT_READOUT[module.embed_dim], module.prefix_tokens)
    return ProjectionSpec("cnn", (1, 2, 3, 4), stats)


PROJECTION_BACKBONES = tuple(NORMALIZATION)  # the names a projected discriminator accepts besides 'inception'
