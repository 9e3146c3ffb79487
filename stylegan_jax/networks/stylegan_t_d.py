"""StyleGAN-T's projected discriminator: a frozen DINO ViT-S/16 and one trainable head per tapped layer.

Input processing, as the official `ProjectedDiscriminator.forward`: DiffAugment (colour, translation,
cutout) on the [-1, 1] images, then [0, 1]; if the images are wider than 224, with probability `p_crop`
one random 224x224 crop (the same window for the whole batch, as torchvision's RandomCrop on a batch);
an area resize to 224x224 and ImageNet normalisation. Augmentation and crop are drawn from the
'diffaug' rng when the call is given one (training) and skipped otherwise (init, inspection).

Features: the tokens after blocks `hooks` (2, 5, 8, 11) and, with `hook_patch`, the embedded patches
(patch embedding + class token + position embedding, timm's `pos_drop` output); the class token is added
to every patch token and dropped (DPT's AddReadout). Each [N, 196, 384] sequence goes to a `DiscHead`:
spectral-normalised 1x1 conv1d, local batch norm, leaky ReLU 0.2; a residual block ((f(x) + x) / sqrt 2)
of the same with a circular kernel-9 conv1d; a spectral-normalised 1x1 conv1d to `cmap_dim` channels
projected onto `cmapper(c)` / sqrt(cmap_dim) (or to 1 channel when c_dim == 0). The logits of all heads
are concatenated, [N, heads * 196], as the official returns them; training/stylegan_t_trainer.py
trains it with the hinge loss.

Variables: the ViT in 'frozen' (`net`, zeros at init, filled by `load_dino_variables`), heads in 'params',
spectral norm's u vectors in 'spectral' (updated when that collection is mutable).
"""
from __future__ import annotations

import os
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.images import image_size
from stylegan_jax.networks import feature_nets
from stylegan_jax.networks.layers import FullyConnectedLayer
from stylegan_jax.ops import diffaugment
from stylegan_jax.ops.resize import area_resize
from stylegan_jax.ops.spectral_norm import spectral_normalize
from stylegan_jax.perceptual import vit

DINO = "vit_small_patch16_224.dino"
INPUT_SIZE = 224  # the ViT's input side
HIGHEST = jax.lax.Precision.HIGHEST


def _unit(v: jax.Array) -> jax.Array:
    return v / jnp.maximum(jnp.linalg.norm(v), 1e-12)


class SpectralConv1d(nn.Module):
    """torch's Conv1d on [N, L, C] (kernel stored [k, in, out]) under spectral_norm (one power iteration
    per call, u in 'spectral'); `circular` pads k // 2 on each side by wrapping around, as padding_mode='circular'."""

    features: int
    kernel: int = 1
    circular: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, cin = self.kernel, x.shape[-1]
        bound = 1 / np.sqrt(cin * k)  # torch's default Conv1d initialisation
        uniform = lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -bound, bound)
        kernel = self.param("kernel", uniform, (k, cin, self.features))
        bias = self.param("bias", uniform, (self.features,))
        u = self.variable("spectral", "u", lambda: _unit(jax.random.normal(self.make_rng("params"), (self.features,))))
        kernel, u_new = spectral_normalize(kernel, u.value, out_axis=-1)
        if self.is_mutable_collection("spectral"):
            u.value = u_new
        if self.circular and k > 1:
            x = jnp.pad(x, ((0, 0), (k // 2, k // 2), (0, 0)), mode="wrap")
        y = jax.lax.conv_general_dilated(x, kernel, (1,), "VALID", dimension_numbers=("NWC", "WIO", "NWC"),
                                         precision=HIGHEST)
        return y + bias


class BatchNormLocal(nn.Module):
    """The official BatchNormLocal: the batch split into ceil(N / virtual_bs) equal groups, each normalised
    with its own statistics over (group members, tokens) per channel, biased variance; no running stats."""

    virtual_bs: int = 8
    eps: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n, length, channels = x.shape
        groups = -(-n // self.virtual_bs)
        if n % groups:
            raise ValueError(f"BatchNormLocal: batch {n} does not split into {groups} equal groups "
                             f"(virtual_bs {self.virtual_bs}), as the official view() requires")
        g = x.reshape(groups, n // groups, length, channels)
        mean = jnp.mean(g, axis=(1, 2), keepdims=True)
        var = jnp.mean(jnp.square(g - mean), axis=(1, 2), keepdims=True)
        g = (g - mean) / jnp.sqrt(var + self.eps)
        scale = self.param("scale", nn.initializers.ones, (channels,))
        bias = self.param("bias", nn.initializers.zeros, (channels,))
        return g.reshape(x.shape) * scale + bias


class HeadBlock(nn.Module):
    """Spectral conv1d, local batch norm, leaky ReLU 0.2 (the official make_block)."""

    kernel: int
    virtual_bs: int = 8

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = SpectralConv1d(x.shape[-1], self.kernel, circular=True, name="conv")(x)
        return nn.leaky_relu(BatchNormLocal(self.virtual_bs, name="norm")(x), 0.2)


class DiscHead(nn.Module):
    """One tapped layer's head: tokens [N, L, C] and conditioning c [N, c_dim] -> logits [N, L]."""

    c_dim: int
    cmap_dim: int = 64
    virtual_bs: int = 8

    @nn.compact
    def __call__(self, x: jax.Array, c: jax.Array) -> jax.Array:
        h = HeadBlock(1, self.virtual_bs, name="block0")(x)
        h = (HeadBlock(9, self.virtual_bs, name="block1")(h) + h) / np.sqrt(2)
        out = SpectralConv1d(self.cmap_dim if self.c_dim > 0 else 1, 1, name="cls")(h)
        if self.c_dim > 0:
            cmap = FullyConnectedLayer(self.c_dim, self.cmap_dim, name="cmapper")(c)
            out = jnp.sum(out * cmap[:, None, :], axis=-1, keepdims=True) * (1 / np.sqrt(self.cmap_dim))
        return out[..., 0]


def _zeros_like_variables(module: nn.Module, x: jax.Array) -> dict:
    shapes = jax.eval_shape(module.init, jax.random.key(0), x)
    return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def _embedded_patches(module: vit.VisionTransformer, params: dict, x: jax.Array) -> jax.Array:
    """timm's pos_drop output: class token + patch embeddings, plus the position embedding."""
    patches = vit.PatchEmbed(module.patch_size, module.embed_dim).apply({"params": params["patch_embed"]}, x)
    cls = jnp.broadcast_to(params["cls_token"], (x.shape[0], 1, module.embed_dim))
    return jnp.concatenate([cls, patches], axis=1) + params["pos_embed"]


class FrozenDINO(nn.Module):
    """The frozen ViT's tapped token sequences (read-out added, class token dropped), [N, L, C] each:
    blocks `hooks`, then the embedded patches when `hook_patch`."""

    backbone: str = DINO
    hooks: Sequence[int] = (2, 5, 8, 11)
    hook_patch: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> list[jax.Array]:
        module = feature_nets.module_for(self.backbone)
        net = self.variable("frozen", "net", lambda: _zeros_like_variables(module, x))  # load_dino_variables fills it

        def run(variables: dict, images: jax.Array) -> list[jax.Array]:
            blocks = module.apply(variables, images)
            taps = [blocks[i] for i in self.hooks]
            if self.hook_patch:
                taps.append(_embedded_patches(module, variables["params"], images))
            return [t[:, 1:] + t[:, :1] for t in taps]

        if self.is_initializing():  # only the shapes matter: no ViT forward in init's program
            return [jnp.zeros(s.shape, s.dtype) for s in jax.eval_shape(run, net.value, x)]
        return run(jax.lax.stop_gradient(net.value), x)


class StyleGANTDiscriminator(nn.Module):
    """StyleGAN-T's ProjectedDiscriminator (official arguments c_dim, diffaug, p_crop; plus the image shape,
    the ViT's `hooks`/`hook_patch`, the heads' `cmap_dim` and batch norm's `virtual_bs`):
    (images [N, H, W, C] in [-1, 1], text embedding c [N, c_dim]) -> logits [N, heads * 196]."""

    c_dim: int
    img_resolution: int | Sequence[int]
    img_channels: int
    diffaug: bool = True
    p_crop: float = 0.5
    hooks: Sequence[int] = (2, 5, 8, 11)
    hook_patch: bool = True
    cmap_dim: int = 64
    virtual_bs: int = 8
    backbone: str = DINO

    def example_inputs(self, batch: int = 1) -> tuple[jax.Array, jax.Array]:
        """Zero images and text embeddings of the right shapes, e.g. for `init`."""
        return jnp.zeros((batch, *image_size(self.img_resolution), self.img_channels)), jnp.zeros((batch, self.c_dim))

    def _preprocess(self, x: jax.Array) -> jax.Array:
        augment = self.has_rng("diffaug")  # training passes the rng; init and inspection don't
        if augment:
            aug_key, crop_key = jax.random.split(self.make_rng("diffaug"))
        if self.diffaug and augment:
            x = diffaugment.apply(x, diffaugment.draw(aug_key, x.shape[0], x.shape[1], x.shape[2]))
        x = (x + 1) / 2
        if x.shape[-1] == 1:
            x = jnp.repeat(x, 3, axis=-1)
        height, width = x.shape[1:3]
        resized = area_resize(x, INPUT_SIZE, INPUT_SIZE)
        if augment and width > INPUT_SIZE and height >= INPUT_SIZE and self.p_crop > 0:
            k_use, k_row, k_col = jax.random.split(crop_key, 3)
            row = jax.random.randint(k_row, (), 0, height - INPUT_SIZE + 1)
            col = jax.random.randint(k_col, (), 0, width - INPUT_SIZE + 1)
            crop = jax.lax.dynamic_slice(x, (0, row, col, 0), (x.shape[0], INPUT_SIZE, INPUT_SIZE, 3))
            resized = jnp.where(jax.random.uniform(k_use) < self.p_crop, crop, resized)
        mean, std = (jnp.asarray(v, jnp.float32) for v in feature_nets.NORMALIZATION[self.backbone])
        return (resized - mean) / std

    @nn.compact
    def __call__(self, img: jax.Array, c: jax.Array) -> jax.Array:
        x = self._preprocess(img.astype(jnp.float32))
        features = FrozenDINO(self.backbone, tuple(self.hooks), self.hook_patch, name="dino")(x)
        logits = [DiscHead(self.c_dim, self.cmap_dim, self.virtual_bs, name=f"head{i}")(f, c)
                  for i, f in enumerate(features)]
        return jnp.concatenate(logits, axis=1)


def load_dino_variables(path: str | os.PathLike, backbone: str = DINO) -> dict:
    """The DINO ViT's weights (timm state dict at `path`) as the 'frozen' collection's `net` entry:
    `variables['frozen']['dino']['net'] = load_dino_variables(path)`."""
    return feature_nets.load_timm(backbone, path)[1]
