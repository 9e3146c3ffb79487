"""Safely unpickles an official snapshot into plain records, numpy arrays and containers.

Only the globals an official snapshot uses are resolved, each to a stand-in of ours: persistent
objects (`torch_utils.persistence._reconstruct_persistent_obj`) become PersistentRecord (their
pickled module source is dropped, never executed), torch tensors become numpy arrays,
`dnnlib.util.EasyDict` becomes a dict, and numpy arrays, scalars and dtypes are checked and rebuilt
(see numpy_pickle). R3GAN's and StyleGAN-T's modules, pickled by value, become ModuleRecords (see
_torch_modules). StyleGAN-XL's and StyleGAN-T's snapshots (pickled with dill) also hold a projected
discriminator: frozen timm feature networks, its heads, forward hooks and functions rebuilt by dill.
Their globals become Inert stand-ins, so the generators load and that discriminator is read past, never run.
"""
from __future__ import annotations

import collections
import dataclasses
import pickle
from typing import Any, BinaryIO

from stylegan_jax.convert._restricted_unpickler import Global, load_restricted
from stylegan_jax.convert._torch_modules import TORCH_MODULE_GLOBALS
from stylegan_jax.convert._torch_tensors import TORCH_GLOBALS
from stylegan_jax.convert.numpy_pickle import NUMPY_GLOBALS


@dataclasses.dataclass(frozen=True)
class PersistentRecord:
    """A persistent object of an official snapshot: its class name and pickled __dict__."""

    class_name: str
    state: dict


class EasyDict(dict):
    """Stand-in for dnnlib.util.EasyDict: a dict that accepts no pickled attribute state."""

    def __setstate__(self, state: Any) -> None:
        if state:
            raise pickle.UnpicklingError("unexpected attribute state on a dnnlib.util.EasyDict")


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    if not (isinstance(meta, dict) and meta.get("type") == "class"
            and isinstance(meta.get("class_name"), str) and isinstance(meta.get("state"), dict)):
        raise pickle.UnpicklingError(
            "malformed persistent object: expected meta with type 'class', class_name and state")
    return PersistentRecord(meta["class_name"], meta["state"])


SNAPSHOT_GLOBALS = {
    **TORCH_GLOBALS,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"):
        Global("torch_utils.persistence._reconstruct_persistent_obj", _reconstruct_persistent_obj),
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    **NUMPY_GLOBALS,
    **TORCH_MODULE_GLOBALS,  # R3GAN's networks, pickled by value
}


# The globals of StyleGAN-XL's and StyleGAN-T's projected discriminators and of what dill pickles by value for them.
PROJECTED_D_PREFIXES = ("pg_modules.", "feature_networks.", "networks.discriminator.", "networks.vit_utils.", "timm.",
                        "torch.nn.", "torch.ao.nn.", "torch.Size", "dill.", "builtins.getattr", "builtins.setattr")


def load_snapshot_object(file: BinaryIO) -> Any:
    """Unpickles `file` with only the globals of an official snapshot allowed (those of the projected
    discriminators as Inert stand-ins)."""
    return load_restricted(file, SNAPSHOT_GLOBALS, "an official network snapshot", PROJECTED_D_PREFIXES)
