"""StyleGAN3 (alias-free) generator: Fourier-feature input, filtered synthesis layers, mapping.

Module and variable names mirror the official state dict ('synthesis.L4_52_32.weight',
'synthesis.input.freqs', 'mapping.w_avg', ...) and arrays keep the official layouts (OIHW
conv weights, [out, in] dense weights); images are NHWC.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.core import FrozenDict

from stylegan_jax.images import aspect_factors, image_size, short_side
from stylegan_jax.networks.layers import BUFFERS, FullyConnectedLayer, GeneratorBase, MappingNetwork
from stylegan_jax.ops.filter_design import design_lowpass_filter
from stylegan_jax.ops.filtered_lrelu import filtered_lrelu
from stylegan_jax.ops.modulated_conv2d_sg3 import modulated_conv2d

NOISE_MODES = ("random", "const", "none")


class LayerSchedule(NamedTuple):
    """Frequency plan of the synthesis layers, one entry per layer; entry 0 also describes the input."""

    cutoffs: np.ndarray  # top of the passband
    stopbands: np.ndarray  # bottom of the stopband
    sampling_rates: np.ndarray  # samples per unit length
    half_widths: np.ndarray  # half the transition band of the low-pass filters
    sizes: np.ndarray  # pixels along the image's shorter side (the layers' names use it)
    channels: np.ndarray
    shapes: np.ndarray  # [layers + 1, 2]: (height, width) in pixels; sizes on both axes when square


def layer_schedule(img_resolution: int | tuple[int, int], img_channels: int, channel_base: float, channel_max: int,
                   num_layers: int, num_critical: int, first_cutoff: float, first_stopband: float,
                   last_stopband_rel: float, margin_size: int) -> LayerSchedule:
    """The frequency plan of the num_layers + 1 synthesis layers (the last is ToRGB), per Alias-Free GAN.

    Cutoff and stopband climb geometrically, layer by layer, from their first values to the image's
    Nyquist frequency (and that times last_stopband_rel), which the last num_critical layers and
    ToRGB keep. Each layer samples at the lowest power of two that holds its stopband, capped at the
    image resolution, and spends the band between its cutoff and the larger of the stopband and
    half its sampling rate on the filter transition. Layers carry margin_size extra pixels on each
    side except the last one and ToRGB; channel counts fall in proportion to the cutoff.

    A non-square image (height, width) is a canvas whose shorter side is the unit length: the
    frequencies and sampling rates are those of the square network of that side, and every layer
    covers the longer axis with proportionally more samples (plus the same margins).
    """
    if num_layers <= num_critical or num_critical < 0:
        raise ValueError(f"need 0 <= num_critical < num_layers, got num_critical={num_critical}, "
                         f"num_layers={num_layers}")
    layer = np.arange(num_layers + 1)
    climb = np.minimum(layer / (num_layers - num_critical), 1)  # 0 at the input, 1 once critical
    side = short_side(img_resolution)
    nyquist = side / 2
    first = np.array([[first_cutoff], [first_stopband]])
    last = np.array([[nyquist], [nyquist * last_stopband_rel]])
    cutoffs, stopbands = first * (last / first) ** climb
    sampling_rates = _power_of_two_at_least(np.minimum(2 * stopbands, side))
    is_last_or_torgb = layer >= num_layers - 1
    shapes = np.where(is_last_or_torgb[:, None], np.array(image_size(img_resolution))[None],
                      sampling_rates[:, None] * np.array(aspect_factors(img_resolution))[None] + 2 * margin_size)
    return LayerSchedule(
        cutoffs=cutoffs, stopbands=stopbands, sampling_rates=sampling_rates,
        half_widths=np.maximum(stopbands, sampling_rates / 2) - cutoffs,
        sizes=np.where(is_last_or_torgb, side, sampling_rates + 2 * margin_size),
        channels=np.where(layer == num_layers, img_channels,
                          np.rint(np.minimum(channel_base / (2 * cutoffs), channel_max))),
        shapes=shapes.astype(int))


def _power_of_two_at_least(x: np.ndarray) -> np.ndarray:
    return np.exp2(np.ceil(np.log2(x)))


def _shape(size: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) of a layer size given as one side or a pair (margins make sides any integer)."""
    return (int(size), int(size)) if np.ndim(size) == 0 else (int(size[0]), int(size[1]))


def _integer_ratio(numerator: float, denominator: float, what: str) -> int:
    ratio = int(np.rint(numerator / denominator))
    if denominator * ratio != numerator:
        raise ValueError(f"{what} factor {numerator}/{denominator} is not an integer")
    return ratio


class SynthesisInput(nn.Module):
    """Fourier features of `channels` random frequencies within `bandwidth`, rotated and translated
    per sample by an affine function of w, sampled on a `size` grid (one side or (height, width))
    at `sampling_rate` samples per unit length, then mixed linearly."""

    w_dim: int
    channels: int
    size: int | tuple[int, int]
    sampling_rate: float
    bandwidth: float

    def _init_frequencies(self) -> jax.Array:
        # Uniform over the disc of radius `bandwidth`: a Gaussian sample's direction, its squared norm
        # (exponentially distributed) mapped to the radius exp(-norm^2 / 4), whose square is uniform.
        freqs = jax.random.normal(self.make_rng("params"), (self.channels, 2))
        radii = jnp.linalg.norm(freqs, axis=1, keepdims=True)
        return freqs / (radii * jnp.exp(jnp.square(radii)) ** 0.25) * self.bandwidth

    @nn.compact
    def __call__(self, w: jax.Array, transform: jax.Array | None = None) -> jax.Array:
        n = w.shape[0]
        weight = self.param("weight", nn.initializers.normal(1.0), (self.channels, self.channels))
        stored_transform = self.variable(BUFFERS, "transform", lambda: jnp.eye(3, dtype=jnp.float32))
        freqs = self.variable(BUFFERS, "freqs", self._init_frequencies).value
        phases = self.variable(BUFFERS, "phases", lambda: jax.random.uniform(
            self.make_rng("params"), (self.channels,)) - 0.5).value
        transform = stored_transform.value if transform is None else jnp.asarray(transform, jnp.float32)
        if transform.shape not in ((3, 3), (n, 3, 3)):
            raise ValueError(f"transform must be [3, 3] or [{n}, 3, 3], got {transform.shape}")

        # Per-sample rotation (r_c, r_s) and translation (t_x, t_y), both inverse w.r.t. the image.
        t = FullyConnectedLayer(self.w_dim, 4, weight_init=0, bias_init=(1, 0, 0, 0), name="affine")(w)
        t = t / jnp.linalg.norm(t[:, :2], axis=1, keepdims=True)
        cos, sin, tx, ty = t[:, 0], t[:, 1], t[:, 2], t[:, 3]
        zero, one = jnp.zeros_like(cos), jnp.ones_like(cos)
        rotation = jnp.stack([jnp.stack([cos, -sin, zero], -1), jnp.stack([sin, cos, zero], -1),
                              jnp.stack([zero, zero, one], -1)], axis=1)
        translation = jnp.stack([jnp.stack([one, zero, -tx], -1), jnp.stack([zero, one, -ty], -1),
                                 jnp.stack([zero, zero, one], -1)], axis=1)
        transforms = rotation @ translation @ transform  # [N, 3, 3]

        phases = phases + (freqs @ transforms[:, :2, 2:])[..., 0]  # [N, C]
        freqs = freqs @ transforms[:, :2, :2]  # [N, C, 2]
        # Fade out frequencies that the user transform pushed beyond the band.
        amplitudes = jnp.clip(1 - (jnp.linalg.norm(freqs, axis=2) - self.bandwidth)
                              / (self.sampling_rate / 2 - self.bandwidth), 0, 1)

        # Pixel centres in the input's units (the extent of each axis is its size / sampling_rate).
        height, width = _shape(self.size)
        grid_x, grid_y = (jnp.asarray((np.arange(n) + 0.5 - n / 2) / self.sampling_rate, jnp.float32)
                          for n in (width, height))
        x = (grid_x[None, None, :, None] * freqs[:, None, None, :, 0]
             + grid_y[None, :, None, None] * freqs[:, None, None, :, 1]
             + phases[:, None, None, :])
        x = jnp.sin(x * np.float32(2 * np.pi)) * amplitudes[:, None, None, :]
        return x @ (weight * np.float32(1 / np.sqrt(self.channels))).T


class SynthesisLayer(nn.Module):
    """Modulated conv followed by filtered leaky ReLU between the input and output sampling grids
    (or, with `is_torgb`, a 1x1 unnormalised modulated conv plus bias), tracking input magnitude."""

    w_dim: int
    is_torgb: bool
    is_critically_sampled: bool
    use_fp16: bool
    in_channels: int
    out_channels: int
    in_size: int | tuple[int, int]  # one side, or (height, width)
    out_size: int | tuple[int, int]
    in_sampling_rate: float
    out_sampling_rate: float
    in_cutoff: float
    out_cutoff: float
    in_half_width: float
    out_half_width: float
    conv_kernel: int = 3
    filter_size: int = 6
    lrelu_upsampling: int = 2
    use_radial_filters: bool = False
    conv_clamp: float | None = 256
    magnitude_ema_beta: float = 0.999
    compute_dtype: Any = None  # dtype of the layer when use_fp16 (None: float32 everywhere)

    def _filter_buffer(self, name: str, numtaps: int, cutoff: float, width: float, fs: float,
                       radial: bool = False) -> jax.Array | None:
        """The designed low-pass filter as a buffer; no buffer for the identity (one tap)."""
        if numtaps == 1:
            return None
        return self.variable(BUFFERS, name, lambda: jnp.asarray(
            design_lowpass_filter(numtaps, cutoff, width, fs, radial=radial))).value

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array, update_emas: bool = False) -> jax.Array:
        kernel = 1 if self.is_torgb else self.conv_kernel
        (in_h, in_w), (out_h, out_w) = (_shape(self.in_size), _shape(self.out_size))
        expected = (x.shape[0], in_h, in_w, self.in_channels)
        if x.shape != expected or w.shape != (x.shape[0], self.w_dim):
            raise ValueError(f"{self.name}: expected x {expected} and w {(x.shape[0], self.w_dim)}, "
                             f"got {x.shape} and {w.shape}")
        dtype = jnp.dtype(self.compute_dtype if self.use_fp16 and self.compute_dtype is not None
                          else jnp.float32)

        # Resampling around the leaky ReLU, which runs at the temporary (higher) rate.
        tmp_rate = (max(self.in_sampling_rate, self.out_sampling_rate)
                    * (1 if self.is_torgb else self.lrelu_upsampling))
        up = _integer_ratio(tmp_rate, self.in_sampling_rate, "upsampling")
        down = _integer_ratio(tmp_rate, self.out_sampling_rate, "downsampling")
        up_taps = self.filter_size * up if up > 1 and not self.is_torgb else 1
        down_taps = self.filter_size * down if down > 1 and not self.is_torgb else 1
        up_filter = self._filter_buffer(
            "up_filter", up_taps, self.in_cutoff, self.in_half_width * 2, tmp_rate)
        down_filter = self._filter_buffer(
            "down_filter", down_taps, self.out_cutoff, self.out_half_width * 2, tmp_rate,
            radial=self.use_radial_filters and not self.is_critically_sampled)
        padding = []
        for in_n, out_n in ((in_w, out_w), (in_h, out_h)):
            pad_total = (out_n - 1) * down + 1 - (in_n + kernel - 1) * up + up_taps + down_taps - 2
            pad_lo = (pad_total + up) // 2  # symmetric interpretation of the sample locations
            padding += [pad_lo, pad_total - pad_lo]

        magnitude_ema = self.variable(BUFFERS, "magnitude_ema", lambda: jnp.ones([], jnp.float32))
        if update_emas and self.is_mutable_collection(BUFFERS):
            magnitude = jnp.mean(jnp.square(jax.lax.stop_gradient(x).astype(jnp.float32)))
            magnitude_ema.value = magnitude + (magnitude_ema.value - magnitude) * self.magnitude_ema_beta
        input_gain = jax.lax.rsqrt(magnitude_ema.value)

        styles = FullyConnectedLayer(self.w_dim, self.in_channels, bias_init=1, name="affine")(w)
        if self.is_torgb:
            styles = styles * np.float32(1 / np.sqrt(self.in_channels * kernel ** 2))
        weight = self.param("weight", nn.initializers.normal(1.0),
                            (self.out_channels, self.in_channels, kernel, kernel))
        bias = self.param("bias", nn.initializers.zeros, (self.out_channels,))

        x = modulated_conv2d(x.astype(dtype), weight, styles, demodulate=not self.is_torgb,
                             padding=kernel - 1, input_gain=input_gain)
        return filtered_lrelu(x, up_filter, down_filter, bias.astype(dtype), up=up, down=down,
                              padding=padding,
                              gain=1.0 if self.is_torgb else float(np.sqrt(2)),
                              slope=1.0 if self.is_torgb else 0.2, clamp=self.conv_clamp)


@dataclasses.dataclass(kw_only=True, unsafe_hash=True)
class SynthesisConfig:
    """Hyperparameters of the synthesis network, with the official names and defaults.

    The Generator inherits these fields, so that it takes the official flat constructor arguments,
    and hands them to its SynthesisNetwork as one SynthesisConfig.
    """

    channel_base: float = 32768
    channel_max: int = 512
    num_layers: int = 14
    num_critical: int = 2
    first_cutoff: float = 2
    first_stopband: float = 2 ** 2.1
    last_stopband_rel: float = 2 ** 0.3
    margin_size: int = 10
    output_scale: float = 0.25
    num_fp16_res: int = 4
    conv_kernel: int = 3
    filter_size: int = 6
    lrelu_upsampling: int = 2
    use_radial_filters: bool = False
    conv_clamp: float | None = 256
    magnitude_ema_beta: float = 0.999
    compute_dtype: Any = None  # dtype of the num_fp16_res highest-resolution layers (None: float32)
    remat: bool = False  # jax.checkpoint per layer: less memory for about a third more compute

    def synthesis_config(self) -> "SynthesisConfig":
        """These hyperparameters alone, e.g. of a Generator that inherits them."""
        return SynthesisConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(SynthesisConfig)})


class SynthesisNetwork(nn.Module):
    """Maps ws [N, num_layers + 2, w_dim] to NHWC images: Fourier input, num_layers filtered
    layers named 'L{idx}_{size}_{channels}', and a final ToRGB layer, scaled by output_scale."""

    w_dim: int
    img_resolution: int | tuple[int, int]  # one side, or (height, width) with a power-of-two aspect
    img_channels: int
    config: SynthesisConfig = SynthesisConfig()

    @property
    def num_ws(self) -> int:
        """Number of w vectors consumed: the input, num_layers layers and the ToRGB layer."""
        return self.config.num_layers + 2

    @nn.nowrap
    def plan_layers(self) -> tuple[LayerSchedule, list[tuple[str, dict[str, Any]]]]:
        """The plan whose entry 0 describes the input, and the (name, SynthesisLayer arguments) of
        every layer in ws order."""
        cfg = self.config
        plan = layer_schedule(self.img_resolution, self.img_channels, cfg.channel_base, cfg.channel_max,
                              cfg.num_layers, cfg.num_critical, cfg.first_cutoff, cfg.first_stopband,
                              cfg.last_stopband_rel, cfg.margin_size)
        return plan, layer_arguments(plan, cfg, self.w_dim, self.img_resolution)

    @nn.compact
    def __call__(self, ws: jax.Array, update_emas: bool = False,
                 transform: jax.Array | None = None) -> jax.Array:
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {ws.shape}")
        cfg = self.config
        plan, layers = self.plan_layers()
        ws = ws.astype(jnp.float32)
        x = SynthesisInput(self.w_dim, int(plan.channels[0]), tuple(int(n) for n in plan.shapes[0]),
                           plan.sampling_rates[0], plan.cutoffs[0], name="input")(ws[:, 0], transform)
        # update_emas (argument 3, counting the module) is static.
        layer_class = nn.remat(SynthesisLayer, static_argnums=(3,)) if cfg.remat else SynthesisLayer
        for idx, (name, kwargs) in enumerate(layers):
            x = layer_class(**kwargs, name=name)(x, ws[:, idx + 1], update_emas)
        if cfg.output_scale != 1:
            x = x * jnp.asarray(cfg.output_scale, x.dtype)
        return x.astype(jnp.float32)


def layer_arguments(plan: LayerSchedule, config: SynthesisConfig, w_dim: int,
                    img_resolution: int | tuple[int, int], first_index: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """Name 'L{index}_{size}_{channels}' and SynthesisLayer arguments of each layer of `plan` (the
    last one ToRGB), indices counted from `first_index`; layer i reads layer i - 1's grid and
    layer 0 the input's, which shares its plan entry. `img_resolution` is the plan's output, which
    decides the low-precision layers."""
    num_layers = len(plan.cutoffs) - 1
    sizes, channels, rates = plan.sizes.astype(int), plan.channels.astype(int), plan.sampling_rates
    shapes = [tuple(int(n) for n in shape) for shape in plan.shapes]
    layers = []
    for idx, src in enumerate(np.maximum(np.arange(num_layers + 1) - 1, 0)):
        layers.append((f"L{first_index + idx}_{sizes[idx]}_{channels[idx]}", dict(
            w_dim=w_dim, is_torgb=idx == num_layers,
            is_critically_sampled=idx >= num_layers - config.num_critical,
            use_fp16=bool(rates[idx] * 2 ** config.num_fp16_res > short_side(img_resolution)),
            in_channels=int(channels[src]), out_channels=int(channels[idx]),
            in_size=shapes[src], out_size=shapes[idx],
            in_sampling_rate=int(rates[src]), out_sampling_rate=int(rates[idx]),
            in_cutoff=plan.cutoffs[src], out_cutoff=plan.cutoffs[idx],
            in_half_width=plan.half_widths[src], out_half_width=plan.half_widths[idx],
            conv_kernel=config.conv_kernel, filter_size=config.filter_size,
            lrelu_upsampling=config.lrelu_upsampling, use_radial_filters=config.use_radial_filters,
            conv_clamp=config.conv_clamp, magnitude_ema_beta=config.magnitude_ema_beta,
            compute_dtype=config.compute_dtype)))
    return layers


class Generator(GeneratorBase, SynthesisConfig):
    """StyleGAN3 generator: mapping network ('mapping') and synthesis network ('synthesis').

    Takes the official constructor arguments, so Generator(**official_init_kwargs) builds the same
    network: the SynthesisConfig fields (inherited) and the ones below. `compute_dtype` (e.g.
    jnp.bfloat16) is used in the num_fp16_res highest-resolution layers, like the official float16
    layers, while parameters stay float32.
    """

    z_dim: int
    c_dim: int
    w_dim: int
    img_resolution: int | tuple[int, int]  # one side, or (height, width) with a power-of-two aspect
    img_channels: int
    mapping_kwargs: Mapping[str, Any] = FrozenDict()

    @property
    def num_ws(self) -> int:
        """Number of w vectors the synthesis network consumes."""
        return self.num_layers + 2

    def setup(self):
        self.synthesis_network = SynthesisNetwork(
            self.w_dim, self.img_resolution, self.img_channels, self.synthesis_config(), name="synthesis")
        self.mapping_network = MappingNetwork(
            z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, num_ws=self.num_ws,
            **{"num_layers": 2, **dict(self.mapping_kwargs)}, name="mapping")

    def synthesis(self, ws: jax.Array, noise_mode: str = "const", update_emas: bool = False,
                  transform: jax.Array | None = None) -> jax.Array:
        """Renders NHWC float32 images from ws; `transform` (3x3) overrides the stored input transform."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        return self.synthesis_network(ws, update_emas=update_emas, transform=transform)

    def __call__(self, z: jax.Array, c: jax.Array | None, truncation_psi: Any = 1.0,
                 truncation_cutoff: int | None = None, noise_mode: str = "const",
                 update_emas: bool = False, transform: jax.Array | None = None) -> jax.Array:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, noise_mode=noise_mode, update_emas=update_emas, transform=transform)
