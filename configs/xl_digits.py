"""StyleGAN-XL's progressive growing on this CPU: a 16x16 stem, then a 32x32 superresolution stage.

    python -m stylegan_jax.main --config=configs/xl_digits.py:stem --workdir=runs/xl_digits16
    python -m stylegan_jax.main --config=configs/xl_digits.py:superres --workdir=runs/xl_digits32 \\
        --config.xl.stem=runs/xl_digits16

The StyleGAN-XL generator (StyleGAN3-T synthesis, class-embedding mapping) on scikit-learn's digits
against the projected discriminator on the FID Inception network (configs/xl_small.py's), with the
official StyleGAN-XL settings scaled down: z_dim 64, a 2-layer mapping, no style mixing, D's blur
faded over the run. The superresolution stage copies the stem run's G_ema and trains only its new head
(and the synthesis input, as the official train_head_only), without path-length regularisation.
"""
from stylegan_jax.configs_common import sibling_config

VARIANTS = ("stem", "superres")


def get_config(variant: str = "stem"):
    if variant not in VARIANTS:
        raise ValueError(f"configs/xl_digits.py has the variants {VARIANTS}, got {variant!r}")
    c = sibling_config(__file__, "xl_small.py")  # digits, the Inception backbone, Adam settings
    c.model.arch = "stylegan_xl"
    c.model.z_dim = 64
    c.model.w_dim = 128
    c.model.map_layers = 2
    c.model.channel_base = 2048
    c.model.channel_max = 64
    c.dataset.use_labels = True    # the ten digit classes pick rows of the class-embedding table
    c.projected.cond = True
    c.loss.style_mixing_prob = 0.0
    c.loss.blur_init_sigma = 2.0
    c.loss.blur_fade_kimg = 5.0
    c.xl.syn_layers = 6
    c.xl.head_layers = 4
    if variant == "superres":
        c.dataset.resolution = 32
        c.xl.stem = "runs/xl_digits16"
        c.loss.pl_weight = 0.0
    return c
