"""ADA on a small dataset: StyleGAN2 at 32x32 on 2,000 UTKFace faces, with or without augmentation.

--config=configs/utkface32_ada_study.py:ada (the default) or :none. Both runs see the same data,
networks, seed and schedule; only `augment.mode` differs. `:ada,wide` and `:none,wide` widen D to 64
channels at 32x32 and 128 below (G keeps 32) and run 400 kimg: at 32 channels D memorised its
training faces too slowly for p to leave 0 within 200 kimg. `:ada,auto` and `:none,auto` keep the
narrow networks and take R1's gamma from the official `--cfg=auto` rule, 0.0002 * resolution**2 / batch
(0.0064 here, 16 times weaker than 0.1), so that D can memorise sooner; they run 200 kimg, which fits
in one three-hour sitting on this 2-core CPU with both runs and their FIDs. `dataset.path` must be a
folder of the 2,000 training images (see benchmarks/ada_study.py, which also makes the 10,000-image FID reference).
"""
from stylegan_jax.training.config import official_config


def get_config(arg: str = "ada"):
    mode, _, variant = arg.partition(",")
    if variant not in ("", "wide", "auto"):
        raise ValueError(f"utkface32_ada_study: unknown variant {variant!r}; use 'MODE', 'MODE,wide' or 'MODE,auto'")
    c = official_config("stylegan2", batch_size=32, r1_gamma=0.1)
    c.augment.mode = mode
    c.augment.kimg = 10.0          # p can go from 0 to 1 in 10 kimg: fast enough for a run of 200 kimg
    c.total_kimg = 200.0           # about 12 s/kimg alone on 2 CPU cores
    c.snapshot_kimg = 10.0
    c.tick_kimg = 1.0
    c.max_to_keep = 20
    c.ema_kimg = 2.0
    c.dataset.source = "folder"
    c.dataset.path = "/tmp/utk/train"  # made by: python benchmarks/ada_study.py prepare --out=/tmp/utk
    c.dataset.resolution = 32
    c.dataset.xflip = False
    c.model.z_dim = c.model.w_dim = 64
    c.model.map_layers = 2
    c.model.channel_base = 1024   # 32 channels at every resolution: a CPU-sized network
    c.model.channel_max = 32
    c.model.num_fp16_res = 0
    c.loss.pl_weight = 0.0         # as the official small-resolution (CIFAR) config
    c.loss.style_mixing_prob = 0.0
    c.optimizer.g_lr = c.optimizer.d_lr = 0.0025
    if variant == "wide":
        c.model.d_channel_base, c.model.d_channel_max = 2048, 128
        c.total_kimg = 400.0
        c.max_to_keep = 60
    if variant == "auto":
        c.loss.r1_gamma = 0.0002 * c.dataset.resolution ** 2 / c.batch_size
        c.total_kimg = 200.0
    return c
