"""A tiny training configuration for the end-to-end tests: 16x16 digits, small networks."""
from stylegan_jax.training.config import default_config

STEPS_PER_KIMG = 1000 // 8


def get_config():
    c = default_config()
    c.batch_size = 8
    c.total_kimg = 0.048           # 6 iterations
    c.snapshot_kimg = 0.016        # a checkpoint every 2 iterations
    c.tick_kimg = 0.016
    c.grid_size = (4, 2)
    c.dataset.source = "digits"
    c.dataset.resolution = 16
    c.model.z_dim = 16
    c.model.w_dim = 16
    c.model.map_layers = 2
    c.model.channel_base = 128
    c.model.channel_max = 16
    c.model.num_fp16_res = 0
    c.loss.r1_gamma = 1.0
    c.loss.pl_weight = 2.0
    c.loss.style_mixing_prob = 0.5
    c.loss.g_reg_interval = 2
    c.loss.d_reg_interval = 2
    c.ema_kimg = 0.01
    c.augment.mode = "ada"         # p adapts every 2 iterations by 8 * 2 / 50 = 0.32
    c.augment.pipe = "color"       # the cheapest pipe to compile; test_augment covers the others
    c.augment.interval = 2
    c.augment.kimg = 0.05
    return c


def override(config, changes: dict):
    """`config` with dotted keys set, e.g. {"model.arch": "stylegan2"}; returns it."""
    for key, value in changes.items():
        target = config
        *parents, leaf = key.split(".")
        for part in parents:
            target = target[part]
        target[leaf] = value
    return config
