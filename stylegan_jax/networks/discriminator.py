"""StyleGAN2 discriminator ('orig', 'skip', 'resnet') with minibatch stddev and label projection."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.core import FrozenDict

from stylegan_jax.images import image_size, short_side
from stylegan_jax.networks.layers import (
    BUFFERS, AcceptsChannelsLastFlag, Conv2dLayer, FullyConnectedLayer, MappingNetwork, check_rotation_head,
    compute_dtype_for, resample_filter_buffer)
from stylegan_jax.networks.stylegan2 import (
    ARCHITECTURES, block_resolutions, block_shape, channels_per_resolution, low_precision_resolution)
from stylegan_jax.ops.normalization import minibatch_std
from stylegan_jax.ops.progressive import downscale_box, lerp_clip, level_lod
from stylegan_jax.ops.upfirdn2d import downsample2d


class DiscriminatorBlock(AcceptsChannelsLastFlag):
    """One resolution of the discriminator: (fromRGB) + conv + 2x down-conv (+ resnet skip)."""

    in_channels: int
    tmp_channels: int
    out_channels: int
    resolution: int
    img_channels: int
    architecture: str = "resnet"
    activation: str = "lrelu"
    resample_filter: Sequence[float] = (1, 3, 3, 1)
    conv_clamp: float | None = None
    use_fp16: bool = False
    compute_dtype: Any = None

    @nn.compact
    def __call__(self, x, img, fade=None):
        """`fade` (progressive only): how much of this level's fromRGB replaces the higher level's x."""
        dtype = compute_dtype_for(self.use_fp16, self.compute_dtype)
        f = resample_filter_buffer(self, self.resample_filter)
        conv = lambda name, cin, cout, k, **kw: Conv2dLayer(
            cin, cout, kernel_size=k, activation=self.activation, conv_clamp=self.conv_clamp, name=name, **kw)
        if x is not None:
            x = x.astype(dtype)
        if self.in_channels == 0 or self.architecture in ("skip", "progressive"):
            img = img.astype(dtype)
            y = conv("fromrgb", self.img_channels, self.tmp_channels, 1)(img)
            if x is None:
                x = y
            else:
                x = lerp_clip(x, y, fade) if self.architecture == "progressive" else x + y
            if self.architecture == "skip":
                img = downsample2d(img, f)
            elif self.architecture == "progressive":
                img = downscale_box(img)  # the official training's naive down-scaling of a level's image
            else:
                img = None
        conv0 = conv("conv0", self.tmp_channels, self.tmp_channels, 3)
        conv1 = conv("conv1", self.tmp_channels, self.out_channels, 3, down=2,
                     resample_filter=self.resample_filter)
        if self.architecture == "resnet":
            y = Conv2dLayer(self.tmp_channels, self.out_channels, kernel_size=1, bias=False, down=2,
                            resample_filter=self.resample_filter, name="skip")(x, gain=np.sqrt(0.5))
            x = y + conv1(conv0(x), gain=np.sqrt(0.5))
        else:
            x = conv1(conv0(x))
        return x, img


class DiscriminatorEpilogue(nn.Module):
    """Final 4x4 stage (4 on the shorter side): (fromRGB), minibatch stddev, conv, two dense layers, label
    projection; with `features`, also returns the final features (the 'fc' output)."""

    in_channels: int
    cmap_dim: int
    resolution: int | tuple[int, int]  # one side, or (height, width)
    img_channels: int
    architecture: str = "resnet"
    mbstd_group_size: int | None = 4
    mbstd_num_channels: int = 1
    activation: str = "lrelu"
    conv_clamp: float | None = None

    @nn.compact
    def __call__(self, x, img, cmap, fade=None, features: bool = False):
        if self.architecture in ("skip", "progressive"):
            y = Conv2dLayer(self.img_channels, self.in_channels, kernel_size=1, activation=self.activation,
                            name="fromrgb")(img.astype(jnp.float32))
            if x is None:
                x = y
            else:
                x = x.astype(jnp.float32)
                x = lerp_clip(x, y, fade) if self.architecture == "progressive" else x + y
        x = x.astype(jnp.float32)
        if self.mbstd_num_channels > 0:
            x = minibatch_std(x, self.mbstd_group_size, self.mbstd_num_channels)
        x = Conv2dLayer(self.in_channels + self.mbstd_num_channels, self.in_channels, kernel_size=3,
                        activation=self.activation, conv_clamp=self.conv_clamp, name="conv")(x)
        # The official dense layer flattens NCHW activations.
        x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)
        height, width = image_size(self.resolution)
        vector = FullyConnectedLayer(self.in_channels * height * width, self.in_channels,
                                     activation=self.activation, name="fc")(x)
        x = FullyConnectedLayer(self.in_channels, 1 if self.cmap_dim == 0 else self.cmap_dim, name="out")(vector)
        if self.cmap_dim > 0:
            x = jnp.sum(x * cmap, axis=1, keepdims=True) * np.float32(1 / np.sqrt(self.cmap_dim))
        return (x, vector) if features else x


class Discriminator(nn.Module):
    """StyleGAN2 discriminator with the official constructor arguments; takes NHWC images."""

    c_dim: int
    img_resolution: int | tuple[int, int]  # one side, or (height, width) with a power-of-two aspect
    img_channels: int
    architecture: str = "resnet"
    channel_base: int = 32768
    channel_max: int = 512
    num_fp16_res: int = 4
    conv_clamp: float | None = 256
    cmap_dim: int | None = None
    block_kwargs: Mapping[str, Any] = FrozenDict()
    mapping_kwargs: Mapping[str, Any] = FrozenDict()
    epilogue_kwargs: Mapping[str, Any] = FrozenDict()
    compute_dtype: Any = None
    remat: bool = False  # jax.checkpoint per block: less memory for about a third more compute
    level_resolution: int | None = None  # architecture 'progressive': the input's level (its shorter side)
    rotation_classes: int = 0  # > 0: a linear 'rotation' head on the final features (SS-GAN); 0: none

    @nn.nowrap
    def example_inputs(self, batch: int = 1) -> tuple[jax.Array, jax.Array]:
        """Zero images (at the level's resolution) and labels of the right shapes, e.g. for `init`."""
        return jnp.zeros((batch, *self._input_size(), self.img_channels)), jnp.zeros((batch, self.c_dim))

    @nn.nowrap
    def _input_size(self) -> tuple[int, int]:
        height, width = image_size(self.img_resolution)
        scale = (self.level_resolution or min(height, width)) / min(height, width)
        return int(height * scale), int(width * scale)

    @nn.compact
    def __call__(self, img: jax.Array, c: jax.Array | None = None, update_emas: bool = False,
                 rotation: bool = False) -> jax.Array | tuple[jax.Array, jax.Array]:
        """Logits [N, 1]; with `rotation`, also the rotation head's logits [N, rotation_classes]."""
        del update_emas  # the discriminator has no running statistics
        check_rotation_head(self, rotation)
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if self.level_resolution is not None and self.architecture != "progressive":
            raise ValueError(f"level_resolution needs architecture 'progressive', got {self.architecture!r}")
        # The image's (or the level's) resolution down to 8, named by the shorter side.
        resolutions = [res for res in block_resolutions(self.img_resolution)[:0:-1]
                       if res <= (self.level_resolution or res)]
        expected = (*self._input_size(), self.img_channels)
        if img.ndim != 4 or img.shape[1:] != expected:
            raise ValueError(f"images must be NHWC of shape [N, {', '.join(map(str, expected))}], got {img.shape}")
        channels = channels_per_resolution(resolutions + [4], self.channel_base, self.channel_max)
        fp16_res = low_precision_resolution(self.img_resolution, self.num_fp16_res)
        cmap_dim = 0 if self.c_dim == 0 else (channels[4] if self.cmap_dim is None else self.cmap_dim)
        # freeze_layers is read by the trainer; the blocks compute the same function either way.
        block_kwargs = {k: v for k, v in self.block_kwargs.items() if k != "freeze_layers"}
        common = dict(img_channels=self.img_channels, architecture=self.architecture, conv_clamp=self.conv_clamp)

        x = None
        lod = self.variable(BUFFERS, "lod", lambda: jnp.zeros((), jnp.float32)) if self.architecture == "progressive" \
            else None
        fade = lambda res: None if lod is None else lod.value - level_lod(2 * res, short_side(self.img_resolution))
        block = nn.remat(DiscriminatorBlock) if self.remat else DiscriminatorBlock
        for res in resolutions:
            x, img = block(
                channels[res] if res < resolutions[0] else 0, channels[res], channels[res // 2],
                resolution=res, use_fp16=res >= fp16_res, compute_dtype=self.compute_dtype,
                name=f"b{res}", **block_kwargs, **common)(x, img, fade(res))
        cmap = None
        if self.c_dim > 0:
            cmap = MappingNetwork(0, self.c_dim, cmap_dim, num_ws=None, w_avg_beta=None, name="mapping",
                                  **self.mapping_kwargs)(None, c)
        epilogue = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=block_shape(4, self.img_resolution),
                                         name="b4", **self.epilogue_kwargs, **common)
        if not self.rotation_classes:
            return epilogue(x, img, cmap, fade(4))
        logits, features = epilogue(x, img, cmap, fade(4), features=True)
        rotation_logits = FullyConnectedLayer(channels[4], self.rotation_classes, name="rotation")(features)
        return (logits, rotation_logits) if rotation else logits
