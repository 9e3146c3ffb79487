"""StyleGAN-XL on ImageNet, stage by stage, with the official train.py settings (autonomousvision/stylegan-xl).

    python -m stylegan_jax.main --config=configs/xl_imagenet.py:16 --workdir=runs/xl_in16 \\
        --config.dataset.path=imagenet16.zip "--config.projected.weights=('deit_b.pth', 'lite0.pth')"
    python -m stylegan_jax.main --config=configs/xl_imagenet.py:32 --workdir=runs/xl_in32 \\
        --config.dataset.path=imagenet32.zip --config.xl.stem=runs/xl_in16 ...

and so on for 64, 128, 256, 512 and 1024, each stage growing from the previous stage's run
(`xl.stem`; by default runs/xl_in{half the resolution}). Official values (--cfg=stylegan3-t --cond=True):
StyleGAN3-T synthesis at twice StyleGAN3's widths (channel_base 65536, channel_max 1024), z_dim 64,
w_dim 512, a 2-layer mapping, 14 synthesis layers in the stem, a 7-layer head and up_factor 2 per
stage; the projected discriminator on deit_base_distilled_patch16_224 and tf_efficientnet_lite0 (cout
64, expand, proj_type 2, 4 mini discriminators, class-conditional heads); D's blur 2 px over 300
kimg; path length (weight 2, from 1000 kimg) in the stem only; no style mixing; Adam lr 0.0025 (G) and
0.002 (D), betas (0, 0.99); EMA half-life batch x 10 / 32 kimg; x-flips. Superresolution stages train
their head only; classifier guidance (official --cls_weight, default 0) is projected.guidance_weight
with deit_small_distilled_patch16_224's weights in projected.guidance_weights. The batch is the official
README's example (--batch=64). None of the timm weights files ships with this package.
"""
from stylegan_jax.training.config import default_config

STEM_RESOLUTION = 16
RESOLUTIONS = (16, 32, 64, 128, 256, 512, 1024)


def get_config(variant: str = "16"):
    resolution = int(variant)
    if resolution not in RESOLUTIONS:
        raise ValueError(f"configs/xl_imagenet.py's variants are the stage resolutions {RESOLUTIONS}, got {variant!r}")
    c = default_config()
    c.batch_size = 64
    c.total_kimg = 10000.0
    c.snapshot_kimg = 200.0
    c.ema_kimg = c.batch_size * 10 / 32
    c.dataset.resolution = resolution
    c.dataset.use_labels = True
    c.dataset.xflip = True
    c.model.arch = "stylegan_xl"
    c.model.z_dim = 64
    c.model.w_dim = 512
    c.model.map_layers = 2
    c.model.channel_base = 2 * 32768
    c.model.channel_max = 2 * 512
    c.xl.syn_layers = 14
    c.xl.head_layers = 7
    c.xl.up_factor = 2
    c.projected.backbones = ("deit_base_distilled_patch16_224", "tf_efficientnet_lite0")
    c.projected.cond = True
    c.loss.blur_init_sigma = 2.0
    c.loss.blur_fade_kimg = 300.0
    c.loss.pl_weight = 2.0
    c.loss.style_mixing_prob = 0.0
    c.optimizer.g_lr = 0.0025
    c.optimizer.d_lr = 0.002
    if resolution > STEM_RESOLUTION:
        c.xl.stem = f"runs/xl_in{resolution // 2}"
        c.loss.pl_weight = 0.0
    return c
