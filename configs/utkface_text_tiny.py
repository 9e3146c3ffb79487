"""StyleGAN-T on captioned UTKFace faces at 32x32, small enough for a CPU: a pipeline check, not a quality run.

Write the captioned folder first (captions such as "a photo of a 34 year old asian woman", from the
file names' age, gender and race; UTKFace is for non-commercial research only):

    python -m stylegan_jax.data.utkface_captions ../shared/datasets/utkface /tmp/utkface_captions
    python -m stylegan_jax.main --config=configs/utkface_text_tiny.py --workdir=/tmp/sgt \\
        --config.dataset.path=/tmp/utkface_captions

The CLIP towers (text, and image for the guidance loss) and the DINO ViT-S/16 of the discriminator
are random unless text.clip_weights / text.dino_weights name the real files (open_clip's ViT-L-14
OpenAI weights with text.clip_sizes=(), the preset's sizes; timm's vit_small_patch16_224.dino). The rest follows the official train.py: z_dim 64, Adam lr 0.002 with
betas (0, 0.99) for both networks, EMA half-life batch x 10 / 32 kimg, no regularisation; the
official blur (32 px over 1000 kimg) is shortened to this run's length.
"""
from stylegan_jax.training.config import default_config


def get_config():
    c = default_config()
    c.total_kimg = 2.0
    c.batch_size = 8
    c.snapshot_kimg = 1.0
    c.tick_kimg = 0.25
    c.grid_size = (4, 2)
    c.dataset.path = "/tmp/utkface_captions"
    c.dataset.captions = True
    c.dataset.resolution = 32
    c.dataset.xflip = False       # "a ... woman" stays a woman under a flip, but keep the captions exact
    c.model.arch = "stylegan_t"
    c.model.z_dim = 64
    c.model.channel_base = 2048
    c.model.channel_max = 64
    c.model.num_fp16_res = 0
    c.text.clip_sizes = (64, 2, 2, 64)  # width, heads, layers, embed_dim of the (random) CLIP towers
    c.text.clip_weight = 0.2
    c.text.num_res_blocks = 1
    c.loss.r1_gamma = 0.0
    c.loss.pl_weight = 0.0
    c.loss.style_mixing_prob = 0.0
    c.loss.blur_init_sigma = 2.0
    c.loss.blur_fade_kimg = 1.0
    c.loss.g_reg_interval = 0
    c.loss.d_reg_interval = 0
    c.ema_kimg = c.batch_size * 10 / 32
    return c
