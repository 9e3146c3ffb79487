"""Loading a generator from an official .pkl, our export (file or folder) or a training checkpoint folder."""
from __future__ import annotations

import os
import pathlib
import pickle
import zipfile

import flax.linen as nn

from stylegan_jax.convert import load_official_pickle
from stylegan_jax.sampling.export_file import is_exported_folder, load_exported, load_state_dict_export

# First bytes of a msgpack map (our export file); a pickle of protocol 2+ starts with PROTO (0x80),
# one of protocol 0 or 1 with an opcode such as '(', 'c', '}' or ']'.
_MSGPACK_MAP = set(range(0x81, 0x90)) | {0xDE, 0xDF}
_PICKLE_START = set(b"\x80(c}])NIFLSVdlt")


class GeneratorLoadError(ValueError):
    """The path holds no generator that can be loaded; the message says why."""


def load_generator(path: str | os.PathLike, step: int | None = None, raw: bool = False) -> tuple[nn.Module, dict]:
    """(module, variables) of the generator at `path`.

    A file is an official network pickle (its G_ema, else G), an export file or a state-dict export
    (.npz); a folder is an export folder or a training workdir/checkpoint, of which `step` picks the
    step (default: latest).
    raw=True loads the raw generator G of a pickle or checkpoint instead of its moving average G_ema.
    """
    path = pathlib.Path(path).expanduser()
    if not path.exists():
        raise GeneratorLoadError(f"{os.fspath(path)!r}: no such file or directory")
    try:
        if path.is_dir() and not is_exported_folder(path):
            return _load_checkpoint(path, step, raw)
        if step is not None:
            raise GeneratorLoadError(f"{os.fspath(path)!r}: a step applies to training checkpoint folders only")
        first = _first_byte(path)
        if first in _PICKLE_START:
            return _load_pickle(path, raw)
        if raw:
            raise GeneratorLoadError(f"{os.fspath(path)!r}: an export holds one generator; raw applies to "
                                     "official pickles and training checkpoints")
        if path.is_dir() or first in _MSGPACK_MAP:
            return load_exported(path)
        if zipfile.is_zipfile(path):
            return load_state_dict_export(path)
        raise GeneratorLoadError(f"{os.fspath(path)!r} is neither a network pickle nor a stylegan_jax export")
    except GeneratorLoadError:
        raise
    except (ValueError, KeyError, OSError, pickle.UnpicklingError, EOFError, RecursionError) as e:
        raise GeneratorLoadError(f"cannot load a generator from {os.fspath(path)!r}: {e}") from e


def is_pickle(path: str | os.PathLike) -> bool:
    """Whether `path` is a file that starts like a pickle (an official network snapshot, if anything)."""
    path = pathlib.Path(path)
    return path.is_file() and _first_byte(path) in _PICKLE_START


def _first_byte(path: pathlib.Path) -> int | None:
    if path.is_dir():
        return None
    with open(path, "rb") as f:
        start = f.read(1)
    return start[0] if start else None


def _load_pickle(path: pathlib.Path, raw: bool) -> tuple[nn.Module, dict]:
    networks = load_official_pickle(path)
    for key in ("G",) if raw else ("G_ema", "G"):
        if key in networks:
            return networks[key]
    wanted = "raw generator G" if raw else "generator"
    raise GeneratorLoadError(f"{os.fspath(path)!r} holds no {wanted} (only {sorted(networks)})")


def _load_checkpoint(path: pathlib.Path, step: int | None, raw: bool) -> tuple[nn.Module, dict]:
    try:
        from stylegan_jax.checkpoint import load_generator as load_checkpoint
    except ImportError as e:
        raise GeneratorLoadError(f"{os.fspath(path)!r} is a folder but not a generator export, and training "
                                 f"checkpoints cannot be read here ({e})") from e
    return load_checkpoint(path, step=step, which="G" if raw else "G_ema")
