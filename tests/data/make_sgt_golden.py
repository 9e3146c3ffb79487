"""Writes sgt_tiny_golden.npz: a tiny StyleGAN-T generator run by the official code on the CPU.

    python tests/data/make_sgt_golden.py /path/to/stylegan-t [tests/data/sgt_tiny_golden.npz]

The first argument is a checkout of https://github.com/autonomousvision/stylegan-t (only its dnnlib,
torch_utils and networks/generator.py, networks/shared.py are used; nothing is imported from this
repository). networks/clip.py would load open_clip's ViT-L/14 weights, so a stand-in `networks.clip`
module whose CLIP has no weights and a `txt_dim` of C_DIM is registered first; the generator is then
given the text embedding c as a tensor, which the official mapping concatenates to w unchanged. The
official custom ops fall back to their reference implementations on the CPU.

The network is randomised beyond its initialisation (every parameter perturbed, so that layer scales,
GroupNorm affines and noise strengths matter; x_avg set) and recorded:
  meta/init_kwargs   the official constructor kwargs (JSON; c_dim is C_DIM)
  sd/<name>          the official state dict
  z, c               latents [N, z_dim] and unit-length text embeddings [N, c_dim]
  ws, ws_trunc       mapping output at psi 1 and at psi PSI
  img, img_trunc     synthesis of ws and ws_trunc (NCHW; noise_mode 'const', fused modconv as in eval)
  x_avg_updated      mapping.x_avg after one mapping call in training mode on (z, c)
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import types

import numpy as np
import torch

C_DIM = 16
INIT_KWARGS = dict(z_dim=8, conditional=True, img_resolution=16, img_channels=3,
                   synthesis_kwargs=dict(channel_base=256, channel_max=32, num_res_blocks=2, architecture="skip",
                                         gn_groups=8))
BATCH, PSI = 3, 0.6


def install_clip_stub() -> None:
    """Registers a weightless `networks.clip.CLIP` with txt_dim C_DIM (the real one downloads ViT-L/14)."""
    module = types.ModuleType("networks.clip")

    class CLIP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = torch.nn.Module()
            self.model.visual = torch.nn.Module()
            self.txt_dim = C_DIM

    module.CLIP = CLIP
    sys.modules["networks.clip"] = module


def install_pkg_resources_stub() -> None:
    """Provides pkg_resources.parse_version (all the official ops use of it) where setuptools lacks it."""
    if importlib.util.find_spec("pkg_resources") is None:
        from packaging.version import parse
        sys.modules["pkg_resources"] = types.SimpleNamespace(parse_version=parse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("official", help="checkout of autonomousvision/stylegan-t")
    parser.add_argument("out", nargs="?", default="tests/data/sgt_tiny_golden.npz")
    args = parser.parse_args()
    sys.path.insert(0, args.official)
    install_clip_stub()
    install_pkg_resources_stub()
    from networks.generator import Generator  # noqa: E402  (official code)

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    G = Generator(**INIT_KWARGS)
    with torch.no_grad():
        for _, p in G.named_parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen) * max(float(p.abs().mean()), 1.0))
        G.mapping.x_avg.copy_(0.3 * torch.randn(G.mapping.x_avg.shape, generator=gen))
    G.eval()

    z = torch.randn([BATCH, G.z_dim], generator=gen)
    c = torch.nn.functional.normalize(torch.randn([BATCH, C_DIM], generator=gen), dim=-1)
    out = {"meta/init_kwargs": np.asarray(json.dumps(INIT_KWARGS)), "z": z.numpy(), "c": c.numpy()}
    out.update({f"sd/{k}": v.detach().numpy().astype(np.float32) for k, v in G.state_dict().items()})
    with torch.no_grad():
        ws = G.mapping(z, c)
        ws_trunc = G.mapping(z, c, truncation_psi=PSI)
        out["ws"], out["ws_trunc"] = ws.numpy(), ws_trunc.numpy()
        out["img"] = G.synthesis(ws, noise_mode="const").numpy()
        out["img_trunc"] = G.synthesis(ws_trunc, noise_mode="const").numpy()
        G.mapping.train()
        G.mapping(z, c)
        out["x_avg_updated"] = G.mapping.x_avg.numpy().copy()
    np.savez_compressed(args.out, **out)
    print(f"wrote {args.out}: num_ws {G.num_ws}, w_dim {G.w_dim}, image {tuple(out['img'].shape)}, "
          f"{len(G.state_dict())} state-dict entries")


if __name__ == "__main__":
    main()
