"""Test helper: writes StyleGAN-T snapshots as its training loop dumps them (dill), without torch.

StyleGAN-T's `networks.generator.Generator` is a plain torch module pickled by value: each module is
its class (a global) and its `__dict__`, with the attributes the official constructors set (no
constructor kwargs anywhere). Its mapping network holds the open_clip model whose text tower embeds
prompts. The module tree is rebuilt from an official state dict, each node given the official class
its position implies and the attributes the official code gives it.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import numpy as np

import official_pickle_writer as w
import r3gan_pickle_writer as rw

GENERATOR = "networks.generator.Generator"
PROJECTED_D = "networks.discriminator.ProjectedDiscriminator"
CLIP_PREFIX = "mapping.clip.model."
BUFFERS = {"resample_filter", "noise_const", "x_avg", "freqs", "phases", "transform"}
# (pattern of a module's dotted path, its official class); the first match wins.
CLASSES = [
    (r"", GENERATOR), (r"mapping", "networks.generator.MappingNetwork"), (r"mapping\.mlp", "networks.shared.MLP"),
    (r"mapping\.mlp\.fc\d+|.*\.proj|.*input\.affine", "networks.shared.FullyConnectedLayer"),
    (r"mapping\.clip", "networks.clip.CLIP"), (r"mapping\.clip\.model", "open_clip.model.CLIP"),
    (r".*\.transformer", "open_clip.transformer.Transformer"),
    (r".*\.resblocks", "torch.nn.modules.container.ModuleList"),
    (r".*\.resblocks\.\d+", "open_clip.transformer.ResidualAttentionBlock"),
    (r".*\.(ln_1|ln_2|ln_final)", "open_clip.transformer.LayerNorm"),
    (r".*\.attn", "torch.nn.modules.activation.MultiheadAttention"),
    (r".*\.attn\.out_proj", "torch.nn.modules.linear.NonDynamicallyQuantizableLinear"),
    (r".*\.resblocks\.\d+\.mlp", "torch.nn.modules.container.Sequential"),
    (r".*\.(c_fc|c_proj)", "torch.nn.modules.linear.Linear"),
    (r".*\.token_embedding", "torch.nn.modules.sparse.Embedding"),
    (r"synthesis", "networks.generator.SynthesisNetwork"), (r"synthesis\.b\d+", "networks.generator.SynthesisBlock"),
    (r".*\.input", "networks.generator.SynthesisInput"), (r".*\.convs1", "torch.nn.modules.container.ModuleList"),
    (r".*\.(conv0|convs1\.\d+)", "networks.generator.SynthesisLayer"), (r".*\.torgb", "networks.generator.ToRGBLayer"),
    (r".*\.norm", "networks.generator.GroupNorm32"), (r".*\.affine", "networks.generator.StyleSplit"),
]


def _class(path: str) -> str:
    return next(cls for pattern, cls in CLASSES if re.fullmatch(pattern, path))


def generator(kwargs: Mapping[str, Any], state_dict: Mapping[str, np.ndarray], *, clip_heads: int = 2,
              quick_gelu: bool = True, attributes: Mapping[str, Mapping[str, Any]] = ()) -> Any:
    """The pickled form of an official StyleGAN-T Generator built with `kwargs` (official constructor
    arguments) and holding `state_dict` (CLIP entries included); `attributes` overrides or adds attributes
    by module path ('' for the Generator)."""
    synthesis = dict(kwargs.get("synthesis_kwargs", {}))
    num_fp16_res, conv_clamp = synthesis.get("num_fp16_res", 4), synthesis.get("conv_clamp", 256)
    log2 = int(np.log2(kwargs["img_resolution"]))
    resolutions = [2 ** i for i in range(synthesis.get("base_mult", 3), log2 + 1)]
    fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
    layer = dict(use_noise=synthesis.get("use_noise", True), activation=synthesis.get("activation", "lrelu"),
                 conv_clamp=conv_clamp)
    overrides = {path: dict(values) for path, values in dict(attributes).items()}
    mapping_layers = sum(bool(re.fullmatch(r"mapping\.mlp\.fc\d+\.weight", name)) for name in state_dict)

    def attrs(path: str, node: dict) -> dict:
        params = node.get("parameters", {})
        found: dict = {}
        if path == "":
            found = {key: kwargs[key] for key in ("z_dim", "conditional", "img_resolution")}
            found.update(img_channels=kwargs.get("img_channels", 3), train_mode=kwargs.get("train_mode", "all"))
        elif path == "mapping":
            found = dict(z_dim=kwargs["z_dim"], x_avg_beta=0.995, num_ws=None)
        elif path == "mapping.mlp":
            found = dict(num_layers=mapping_layers)
        elif re.fullmatch(r"mapping\.mlp\.fc\d+", path):
            found = dict(activation="linear" if path.endswith(f"fc{mapping_layers - 1}") else "lrelu",
                         weight_gain=0.01 / np.sqrt(params["weight"].shape[1]), bias_gain=0.01)
        elif path == "synthesis":
            found = dict(img_resolution=kwargs["img_resolution"], num_fp16_res=num_fp16_res,
                         block_resolutions=resolutions, img_channels=kwargs.get("img_channels", 3))
        elif re.fullmatch(r"synthesis\.b\d+", path):
            res = int(path.rsplit("b", 1)[1])
            width = node["modules"]["convs1"]["modules"]["0"]["parameters"]["weight"].shape[0]
            found = dict(resolution=res, out_channels=int(width),
                         architecture=synthesis.get("architecture", "orig"), use_fp16=res >= fp16_resolution,
                         channels_last=False, fused_modconv_default="inference_only", is_last=res == resolutions[-1])
        elif re.fullmatch(r".*\.(conv0|convs1\.\d+)", path):
            found = dict(layer, up=2 if path.endswith("conv0") else 1, residual="norm" in node.get("modules", {}))
        elif path.startswith("synthesis.") and path.endswith(".norm"):
            found = dict(num_groups=synthesis.get("gn_groups", 32), num_channels=params["weight"].shape[0], eps=1e-5)
        elif path.endswith(".attn"):
            width = params["in_proj_weight"].shape[1]
            found = dict(embed_dim=width, num_heads=clip_heads, head_dim=width // clip_heads, batch_first=True,
                         _qkv_same_embed_dim=True)
        elif path == "mapping.clip":
            found = dict(img_resolution=224, im_dim=None, txt_dim=None)
        elif path == "mapping.clip.norm":
            found = dict(mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711))
        return {**found, **overrides.get(path, {})}

    tree = w.state_dict_tree(state_dict, BUFFERS)
    if kwargs.get("conditional"):  # modules without tensors: CLIP's input normalisation, activations, layer scales
        clip = tree["modules"]["mapping"]["modules"]["clip"]
        clip["modules"]["norm"] = {"class": "torchvision.transforms.transforms.Normalize"}
        gelu = "open_clip.transformer.QuickGELU" if quick_gelu else "torch.nn.modules.activation.GELU"
        for block in clip["modules"]["model"]["modules"]["transformer"]["modules"]["resblocks"]["modules"].values():
            block["modules"]["mlp"]["modules"]["gelu"] = {"class": gelu}
            for scale in ("ls_1", "ls_2"):
                block["modules"][scale] = {"class": "torch.nn.modules.linear.Identity"}

    def build(path: str, node: dict):
        modules = {name: build(f"{path}.{name}" if path else name, child)
                   for name, child in node.get("modules", {}).items()}
        return rw.torch_module(node.get("class") or _class(path), node.get("parameters", {}), node.get("buffers", {}),
                               modules, **attrs(path, node))

    return build("", tree)


def clip_text_state_dict(width: int = 16, layers: int = 1, context: int = 77, vocab: int = 49408,
                         seed: int = 0) -> dict[str, np.ndarray]:
    """Random open_clip text-tower tensors under the official generator's `mapping.clip.model.` prefix."""
    rng = np.random.default_rng(seed)
    normal = lambda *shape: (0.1 * rng.standard_normal(shape)).astype(np.float32)
    tensors = {"token_embedding.weight": normal(vocab, width), "positional_embedding": normal(context, width),
               "ln_final.weight": 1 + normal(width), "ln_final.bias": normal(width),
               "text_projection": normal(width, width), "logit_scale": np.array(4.6, np.float32)}
    for i in range(layers):
        b = f"transformer.resblocks.{i}."
        tensors.update({f"{b}ln_1.weight": 1 + normal(width), f"{b}ln_1.bias": normal(width),
                        f"{b}ln_2.weight": 1 + normal(width), f"{b}ln_2.bias": normal(width),
                        f"{b}attn.in_proj_weight": normal(3 * width, width), f"{b}attn.in_proj_bias": normal(3 * width),
                        f"{b}attn.out_proj.weight": normal(width, width), f"{b}attn.out_proj.bias": normal(width),
                        f"{b}mlp.c_fc.weight": normal(4 * width, width), f"{b}mlp.c_fc.bias": normal(4 * width),
                        f"{b}mlp.c_proj.weight": normal(width, 4 * width), f"{b}mlp.c_proj.bias": normal(width)})
    return {CLIP_PREFIX + name: value for name, value in tensors.items()}


def projected_d() -> Any:
    """StyleGAN-T's ProjectedDiscriminator as dill pickles it: a timm DINO ViT with hooks rebuilt from code."""
    hook = w.Call(w._stand_in("dill._dill", "_create_function"),
                  w.Call(w._stand_in("dill._dill", "_create_code"), 1, 0, b"\x97\x00y\x00"), {}, "get_activation")
    vit = rw.torch_module("timm.models.vision_transformer.VisionTransformer",
                          {"cls_token": np.zeros((1, 1, 8), np.float32)}, embed_dim=8)
    vit.__dict__["_forward_hooks"] = {0: hook}
    dino = rw.torch_module("networks.discriminator.DINO", modules={"model": vit}, n_hooks=5)
    return rw.torch_module(PROJECTED_D, modules={"dino": dino}, c_dim=16, diffaug=True, p_crop=0.5)


def dump(path, G: Any, D: Any = None, resolution: int = 16) -> str:
    """Writes a snapshot dict as StyleGAN-T's training loop does; returns the path."""
    with open(path, "wb") as f:
        w.dump(dict(G=G, D=projected_d() if D is None else D, G_ema=G,
                    training_set_kwargs=dict(class_name="training.data_zip.ImageFolderDataset", resolution=resolution)), f)
    return str(path)
