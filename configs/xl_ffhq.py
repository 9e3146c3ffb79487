"""StyleGAN-XL on FFHQ, stage by stage: configs/xl_imagenet.py with the official README's settings for
datasets other than ImageNet (--cbase 16384 --cmax 256, which XL doubles for StyleGAN3 as for ImageNet;
7 synthesis layers in the stem, 4-layer heads), unconditional, no classifier guidance. Variants: the stage resolutions 16 .. 1024;
each stage grows from runs/xl_ffhq{half the resolution} unless --config.xl.stem says otherwise.
"""
from stylegan_jax.configs_common import sibling_config


def get_config(variant: str = "16"):
    c = sibling_config(__file__, "xl_imagenet.py", variant)
    c.dataset.use_labels = False
    c.projected.cond = False
    c.model.channel_base = 2 * 16384
    c.model.channel_max = 2 * 256
    c.xl.syn_layers = 7
    c.xl.head_layers = 4
    if c.xl.stem:
        c.xl.stem = f"runs/xl_ffhq{int(variant) // 2}"
    return c
