"""Writes xl_tiny_golden.npz: tiny StyleGAN-XL generators run by the official code on the CPU.

    python tests/data/make_xl_golden.py /path/to/stylegan-xl [tests/data/xl_tiny_golden.npz]

The first argument is a checkout of https://github.com/autonomousvision/stylegan-xl (only its
dnnlib, torch_utils, training and legacy.py are used, e.g. from `git archive HEAD -- dnnlib torch_utils
training legacy.py | tar -x -C /tmp/sgxl`; nothing is imported from this repository).
For each variant ('t': conv_kernel 3; 'r': conv_kernel 1 with radial filters) it builds a stem
training.networks_stylegan3_resetting.Generator (16x16, 6 layers, 5 classes), a SuperresGenerator
grown from it (x2, 3 head layers) and, for 't', a second stage grown from that one (x2, 3 head
layers). MappingNetwork reads its class embeddings from in_embeddings/tf_efficientnet_lite0.pkl under
the working directory, so the script writes a small random table there in a temporary directory.
The official custom ops fall back to their reference implementations on the CPU.

Each network is randomised beyond its initialisation (every parameter perturbed, magnitude EMAs and
w_avg set, a non-identity input transform) and recorded under '<variant>/<net>/':
  meta/init_kwargs   the official constructor kwargs (JSON)
  sd/<name>          the official state dict
  z, c               latents [N, z_dim] and one-hot labels [N, c_dim] (a repeated class)
  ws, ws_trunc       mapping output at psi 1 and at psi 0.6 with truncation_cutoff 3
  w_avg_updated      mapping.w_avg after one mapping call with update_emas=True on (z, c)
stems only:
  img, img_trunc     synthesis of ws / ws_trunc (NCHW; noise_mode 'const', which StyleGAN3 ignores)
superresolution stages only (images of the stems' kind would double the file):
  img_updated        synthesis of ws with update_emas=True (the layers use the updated magnitudes)
  mag_updated/<name> each layer's magnitude_ema after that call
  head_layer_names   the stage's head_layer_names (JSON)
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import pickle
import sys
import tempfile

import numpy as np
import torch

NUM_EMBEDDINGS, EMBEDDING_DIM = 7, 12
STEM = dict(z_dim=8, c_dim=5, w_dim=16, img_resolution=16, img_channels=3,
            mapping_kwargs=dict(num_layers=2, rand_embedding=False),
            channel_base=256, channel_max=32, num_layers=6, magnitude_ema_beta=0.9)
VARIANTS = {"t": dict(conv_kernel=3, use_radial_filters=False), "r": dict(conv_kernel=1, use_radial_filters=True)}
HEAD_LAYERS, UP_FACTOR = 3, 2
LABELS = [3, 1, 3]
PSI, CUTOFF = 0.6, 3


def randomise(G: torch.nn.Module, generator: torch.Generator) -> None:
    """Moves every parameter and buffer that training would move off its initial value."""
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name != "mapping.embed.weight":
                p.add_(0.1 * torch.randn(p.shape, generator=generator) * max(float(p.abs().mean()), 1.0))
        for name, b in G.named_buffers():
            if name.endswith("magnitude_ema"):
                b.copy_(0.5 + torch.rand([], generator=generator) * 1.5)
            elif name.endswith("w_avg"):
                b.copy_(torch.randn(b.shape, generator=generator) * 0.3)
            elif name.endswith("input.transform"):
                angle, tx, ty = 0.3, 0.1, -0.05
                b.copy_(torch.tensor([[np.cos(angle), -np.sin(angle), tx], [np.sin(angle), np.cos(angle), ty],
                                      [0, 0, 1]], dtype=torch.float32))


def record(prefix: str, G: torch.nn.Module, init_kwargs: dict, out: dict, generator: torch.Generator) -> None:
    """Stores G's kwargs, state dict, inputs and outputs under `prefix`."""
    out[f"{prefix}/meta/init_kwargs"] = np.array(json.dumps(init_kwargs))
    for name, value in G.state_dict().items():
        out[f"{prefix}/sd/{name}"] = value.detach().numpy().astype(np.float32)
    z = torch.randn([len(LABELS), G.z_dim], generator=generator)
    c = torch.nn.functional.one_hot(torch.tensor(LABELS), G.c_dim).to(torch.float32)
    superres = isinstance(G, sys.modules["training.networks_stylegan3_resetting"].SuperresGenerator)
    with torch.no_grad():
        ws = G.mapping(z, c)
        ws_trunc = G.mapping(z, c, truncation_psi=PSI, truncation_cutoff=CUTOFF)
        updated = copy.deepcopy(G)
        updated.mapping(z, c, update_emas=True)
        out.update({f"{prefix}/z": z.numpy(), f"{prefix}/c": c.numpy(), f"{prefix}/ws": ws.numpy(),
                    f"{prefix}/ws_trunc": ws_trunc.numpy(), f"{prefix}/w_avg_updated": updated.mapping.w_avg.numpy()})
        if not superres:
            out[f"{prefix}/img"] = G.synthesis(ws, noise_mode="const").numpy()
            out[f"{prefix}/img_trunc"] = G.synthesis(ws_trunc, noise_mode="const").numpy()
            return
        out[f"{prefix}/img_updated"] = updated.synthesis(ws, noise_mode="const", update_emas=True).numpy()
    for name in G.synthesis.layer_names:
        out[f"{prefix}/mag_updated/{name}"] = getattr(updated.synthesis, name).magnitude_ema.numpy()
    out[f"{prefix}/head_layer_names"] = np.array(json.dumps(G.head_layer_names))
    print(f"{prefix}: {G.num_ws} ws, layers {G.synthesis.layer_names}, head {G.head_layer_names}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("official", help="checkout of the official StyleGAN-XL code")
    parser.add_argument("output", nargs="?", default=os.path.join(os.path.dirname(__file__), "xl_tiny_golden.npz"))
    args = parser.parse_args()
    output = os.path.abspath(args.output)
    sys.path.insert(0, os.path.abspath(args.official))
    workdir = tempfile.mkdtemp()
    os.chdir(workdir)
    os.makedirs("in_embeddings")
    torch.manual_seed(0)
    with open("in_embeddings/tf_efficientnet_lite0.pkl", "wb") as f:
        pickle.dump({"embed": torch.nn.Embedding(NUM_EMBEDDINGS, EMBEDDING_DIM)}, f)
    from training import networks_stylegan3_resetting as xl  # noqa: E402  (the official code)

    out: dict = {}
    for v, (variant, layer_kwargs) in enumerate(VARIANTS.items()):
        generator = torch.Generator().manual_seed(100 + v)
        torch.manual_seed(10 + v)
        stem_kwargs = {**STEM, **layer_kwargs}
        stem = xl.Generator(**stem_kwargs)
        randomise(stem, generator)
        record(f"{variant}/stem", stem, stem_kwargs, out, generator)

        stages = 2 if variant == "t" else 1
        previous, resolution = stem, STEM["img_resolution"]
        for stage in range(1, stages + 1):
            path = os.path.join(workdir, f"{variant}_stage{stage - 1}.pkl")
            with open(path, "wb") as f:
                pickle.dump(dict(G=previous, G_ema=previous), f)
            resolution *= UP_FACTOR
            kwargs = dict(img_resolution=resolution, path_stem=os.path.basename(path), head_layers=HEAD_LAYERS,
                          up_factor=UP_FACTOR, c_dim=STEM["c_dim"], img_channels=STEM["img_channels"])
            torch.manual_seed(20 + 10 * v + stage)
            superres = xl.SuperresGenerator(**{**kwargs, "path_stem": path})
            randomise(superres, generator)
            record(f"{variant}/superres{stage}", superres, kwargs, out, generator)
            previous = superres
    np.savez_compressed(output, **out)
    print(f"wrote {output}: {os.path.getsize(output)} bytes")


if __name__ == "__main__":
    main()
