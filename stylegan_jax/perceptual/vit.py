"""The Vision Transformer (ViT, DeiT) as a Flax module, laid out like timm's VisionTransformer.

Images are cut into linearly projected patches (a strided convolution, computed as a matrix product);
class token (and DeiT's distillation token) are prepended, a learned position embedding is added, and
pre-norm transformer blocks follow (LayerNorm, fused-qkv multi-head self-attention, LayerNorm, GELU MLP,
each with a residual), then a final LayerNorm.

Module and parameter names mirror timm's state dict (`patch_embed.proj`, `cls_token`, `dist_token`,
`pos_embed`, `blocks.<i>.attn.qkv`, `norm`, with `blocks.<i>` as `blocks_<i>`), so that a loader can
map tensors by name.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

LN_EPSILON = 1e-6
HIGHEST = jax.lax.Precision.HIGHEST


def _layer_norm(name: str) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=LN_EPSILON, use_fast_variance=False, name=name)


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection."""

    num_heads: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch, tokens, dim = x.shape
        head_dim = dim // self.num_heads
        qkv = nn.Dense(3 * dim, precision=HIGHEST, name="qkv")(x)
        q, k, v = jnp.moveaxis(qkv.reshape(batch, tokens, 3, self.num_heads, head_dim), 2, 0)
        logits = jnp.einsum("bqhd,bkhd->bhqk", q * head_dim ** -0.5, k, precision=HIGHEST)
        out = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits, axis=-1), v, precision=HIGHEST)
        return nn.Dense(dim, precision=HIGHEST, name="proj")(out.reshape(batch, tokens, dim))


class Mlp(nn.Module):
    """Two dense layers with an exact (erf) GELU between them; the output has the input's width."""

    hidden: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        dim = x.shape[-1]
        x = nn.gelu(nn.Dense(self.hidden, precision=HIGHEST, name="fc1")(x), approximate=False)
        return nn.Dense(dim, precision=HIGHEST, name="fc2")(x)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    num_heads: int
    mlp_ratio: float = 4.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x + Attention(self.num_heads, name="attn")(_layer_norm("norm1")(x))
        return x + Mlp(int(x.shape[-1] * self.mlp_ratio), name="mlp")(_layer_norm("norm2")(x))


class PatchProjection(nn.Module):
    """The convolution with kernel = stride = p and no padding (`kernel` [p, p, C, features] and `bias`, as
    nn.Conv names them) as one matrix product over the flattened patches: NHWC [N, H, W, C] ->
    [N, H // p, W // p, features]. Same values; its input gradient is a matrix product too, where XLA:CPU
    runs the strided convolution's (an input-dilated convolution) slowly without LLVM optimisation."""

    patch_size: int
    features: int
    use_bias: bool = True

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        p = self.patch_size
        n, height, width, channels = images.shape
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (p, p, channels, self.features))
        rows, cols = height // p, width // p
        patches = images[:, :rows * p, :cols * p].reshape(n, rows, p, cols, p, channels).transpose(0, 1, 3, 2, 4, 5)
        y = jnp.dot(patches.reshape(n, rows, cols, p * p * channels), kernel.reshape(p * p * channels, -1),
                    precision=HIGHEST)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y


class PatchEmbed(nn.Module):
    """Non-overlapping patches, linearly projected and flattened row-major to [N, patches, dim]."""

    patch_size: int
    embed_dim: int

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        x = PatchProjection(self.patch_size, self.embed_dim, name="proj")(images)
        return x.reshape(x.shape[0], -1, self.embed_dim)


class VisionTransformer(nn.Module):
    """ViT / DeiT: NHWC images [N, img_size, img_size, 3] -> the tokens after each block.

    `__call__` returns a list of `depth` arrays [N, prefix_tokens + (img_size / patch_size)^2, embed_dim],
    the output of each transformer block in order (the tokens start with the class token, then DeiT's
    distillation token when prefix_tokens == 2, then the patches row by row); the final LayerNorm is not
    applied to them. The final-normed tokens of the last block are sown as ('intermediates', 'normed'):
    `module.apply(variables, images, mutable=['intermediates'])` returns them too.
    The images must be of the configured size and already normalised as the weights expect.
    """

    img_size: int = 224
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    prefix_tokens: int = 1  # 1: class token; 2: class and distillation tokens (DeiT distilled)

    @nn.compact
    def __call__(self, images: jax.Array) -> list[jax.Array]:
        if tuple(images.shape[1:3]) != (self.img_size, self.img_size):
            raise ValueError(f"ViT input is {images.shape[1]}x{images.shape[2]}, but this network takes "
                             f"{self.img_size}x{self.img_size} images (resize them first)")
        if self.prefix_tokens not in (1, 2):
            raise ValueError(f"prefix_tokens must be 1 (class token) or 2 (class and distillation), "
                             f"got {self.prefix_tokens}")
        x = PatchEmbed(self.patch_size, self.embed_dim, name="patch_embed")(jnp.asarray(images, jnp.float32))
        batch, patches = x.shape[:2]
        names = ("cls_token", "dist_token")[:self.prefix_tokens]
        prefix = [jnp.broadcast_to(self.param(name, nn.initializers.zeros, (1, 1, self.embed_dim)),
                                   (batch, 1, self.embed_dim)) for name in names]
        pos_embed = self.param("pos_embed", nn.initializers.normal(0.02),
                               (1, self.prefix_tokens + patches, self.embed_dim))
        x = jnp.concatenate([*prefix, x], axis=1) + pos_embed
        outputs = []
        for i in range(self.depth):
            x = Block(self.num_heads, self.mlp_ratio, name=f"blocks_{i}")(x)
            outputs.append(x)
        self.sow("intermediates", "normed", _layer_norm("norm")(x))
        return outputs
