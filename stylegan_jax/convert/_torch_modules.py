"""Stand-ins for torch modules pickled by value, as R3GAN's and StyleGAN-T's snapshots hold their networks.

R3GAN's `training.networks.Generator` / `Discriminator` and StyleGAN-T's `networks.generator.Generator`
(with the open_clip text tower inside its mapping network) are plain `torch.nn.Module`s (no
torch_utils.persistence), so a snapshot pickles each as its class (a global) and its `__dict__`:
parameters, buffers, submodules and plain attributes, no constructor arguments. Each permitted
class resolves to a ModuleRecord subclass that only stores that dict; nothing of torch, R3GAN,
StyleGAN-T or open_clip is imported or run. Torch dtypes (a stage's `DataType`) resolve to inert markers.
"""
from __future__ import annotations

import pickle
from typing import Any, ClassVar

from stylegan_jax.convert._restricted_unpickler import Global

MODULE_STATE_KEYS = ("_parameters", "_buffers", "_modules")


class ModuleRecord:
    """A torch module pickled by value: its class's qualified name and its `__dict__`."""

    __slots__ = ("state",)
    class_name: ClassVar[str] = ""

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, dict) and all(isinstance(state.get(k), dict) for k in MODULE_STATE_KEYS)):
            raise pickle.UnpicklingError(f"malformed state of a pickled {self.class_name} module")
        self.state = state


def _record_class(qualified_name: str) -> type:
    name = qualified_name.rsplit(".", 1)[-1]
    return type(name, (ModuleRecord,), {"__slots__": (), "class_name": qualified_name})


# The modules of R3GAN's networks (its CUDA and reference operator variants) and the torch.nn
# modules they and StyleGAN-XL's generators hold.
MODULE_CLASSES = (
    "training.networks.Generator", "training.networks.Discriminator",
    *(f"R3GAN.Networks.{name}" for name in (
        "Generator", "Discriminator", "GeneratorStage", "DiscriminatorStage", "ResidualBlock", "Convolution",
        "UpsampleLayer", "DownsampleLayer", "GenerativeBasis", "DiscriminativeBasis")),
    *(f"R3GAN.Resamplers.Interpolative{kind}{variant}" for kind in ("Upsampler", "Downsampler")
      for variant in ("CUDA", "Reference")),
    "R3GAN.FusedOperators.BiasedActivationCUDA", "R3GAN.FusedOperators.BiasedActivationReference",
    "torch.nn.modules.conv.Conv2d", "torch.nn.modules.linear.Linear", "torch.nn.modules.container.ModuleList",
    "torch.nn.modules.sparse.Embedding",  # StyleGAN-XL's class embedding (mapping.embed), CLIP's token embedding
    # StyleGAN-T's generator: its own modules and those of the CLIP text tower it holds.
    *(f"networks.generator.{name}" for name in (
        "Generator", "MappingNetwork", "SynthesisNetwork", "SynthesisBlock", "SynthesisLayer", "SynthesisInput",
        "ToRGBLayer", "StyleSplit", "GroupNorm32")),
    "networks.shared.MLP", "networks.shared.FullyConnectedLayer", "networks.shared.ResidualBlock", "networks.clip.CLIP",
    "torchvision.transforms.transforms.Normalize",
    "open_clip.model.CLIP", "open_clip.transformer.Transformer", "open_clip.transformer.ResidualAttentionBlock",
    "open_clip.transformer.LayerNorm", "open_clip.transformer.LayerNormFp32", "open_clip.transformer.QuickGELU",
    "open_clip.transformer.LayerScale", "open_clip.model.QuickGELU",
    "torch.nn.modules.activation.MultiheadAttention", "torch.nn.modules.linear.NonDynamicallyQuantizableLinear",
    "torch.nn.modules.activation.GELU", "torch.nn.modules.container.Sequential", "torch.nn.modules.linear.Identity",
    "torch.nn.modules.normalization.LayerNorm",
)

TORCH_DTYPES = ("float32", "float16", "bfloat16")


TORCH_MODULE_GLOBALS = {
    **{tuple(name.rsplit(".", 1)): _record_class(name) for name in MODULE_CLASSES},
    **{("torch", dtype): Global(f"torch.{dtype}", payload=dtype) for dtype in TORCH_DTYPES},
}


def submodule(record: Any, *path: str) -> Any:
    """The module record (persistent or by value) at `path` below `record`, or None."""
    for name in path:
        modules = record.state.get("_modules")
        record = modules.get(name) if isinstance(modules, dict) else None
        if not isinstance(getattr(record, "state", None), dict):
            return None
    return record
