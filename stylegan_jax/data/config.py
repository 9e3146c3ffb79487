"""The `dataset` section of a training config: its keys, defaults and start-up checks."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import ml_collections
from ml_collections import config_dict

from stylegan_jax import fileio
from stylegan_jax.images import image_size

SOURCES = ("folder", "zip", "tfrecord", "tfds", "digits")
FITS = ("crop", "letterbox")
TFRECORD_METADATA = "metadata.json"


class DatasetConfigError(ValueError):
    """A dataset setting is wrong, or the data it points at cannot be used; `key` names the setting.

    `switch`, if given, is (boolean setting, what turning it on does), e.g. ("convert_channels",
    "convert them"): the message ends with how to turn it on, which a command line may word in its flags.
    """

    def __init__(self, key: str, problem: str, switch: tuple[str, str] | None = None):
        remedy = "" if switch is None else f"; set dataset.{switch[0]}=True to {switch[1]}"
        super().__init__(f"dataset.{key}: {problem}{remedy}")
        self.key, self.problem, self.switch = key, problem, switch


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """The dataset settings (see `default_dataset_config` for what each key means)."""

    source: str = "folder"
    path: str = ""
    name: str = ""
    split: str = "train"
    data_dir: str = ""
    resolution: int | tuple[int, int] = 256  # one side, or (height, width) when not square
    fit: str = "crop"
    channels: int = 3
    xflip: bool = False
    use_labels: bool = False
    captions: bool = False
    max_size: int = 0
    convert_channels: bool = False
    num_threads: int = 0


def default_dataset_config() -> ml_collections.ConfigDict:
    """The dataset section with its defaults.

    source: 'folder' | 'zip' (PNG/JPEG, labels from dataset.json or class sub-folders), 'tfrecord'
    (shards written by stylegan_jax.dataset_tool), 'tfds' (a prepared TFDS dataset `name`/`split`
    under `data_dir`), 'digits' (scikit-learn's 8x8 digits, upsampled). path: the folder, zip or
    shard folder. resolution: one side (256) or height x width ("32x64", (32, 64)), powers of two.
    fit: how images of another aspect ratio reach the resolution's: 'crop' (the centre region of that
    aspect) or 'letterbox' (the whole image, centred on black borders). channels (1 or 3): what
    training sees. xflip: add mirrored copies.
    use_labels: one-hot class labels. captions: labels are the CLIP token ids (float32 [77]) of each
    image's caption, from x.txt beside x.png or captions.jsonl (folder/zip; see data.captions).
    max_size: keep a fixed random subset of this many images (0: all). convert_channels: convert images with other channel counts instead of failing.
    num_threads: TF threads for decoding (0: min(8, CPU count)).
    """
    config = ml_collections.ConfigDict(dataclasses.asdict(DatasetConfig()))
    # Any type, so that the command line may give 256, 32x64 or (32, 64).
    config.resolution = config_dict.FieldReference(DatasetConfig.resolution, field_type=object)
    return config


def _check_type(key: str, value: Any, kind: type) -> None:
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if not ok:
        raise DatasetConfigError(key, f"expected {kind.__name__}, got {value!r}")


def _check_path(config: DatasetConfig) -> None:
    if not config.path:
        raise DatasetConfigError("path", f"required for source={config.source!r}")
    if not fileio.exists(config.path):
        raise DatasetConfigError("path", f"{config.path} does not exist")
    is_dir = fileio.isdir(config.path)
    if config.source in ("folder", "tfrecord") and not is_dir:
        raise DatasetConfigError("path", f"{config.path} is not a folder (source={config.source!r})")
    if config.source == "zip" and is_dir:
        raise DatasetConfigError("path", f"{config.path} is a folder; use source='folder' for it")
    if config.source == "tfrecord" and not fileio.exists(fileio.join(config.path, TFRECORD_METADATA)):
        raise DatasetConfigError("path", f"{config.path} holds no {TFRECORD_METADATA}; write TFRecord shards with "
                                         "`python -m stylegan_jax.dataset_tool`")


def normal_resolution(resolution: Any) -> int | tuple[int, int]:
    """One side for a square resolution, (height, width) otherwise; DatasetConfigError when invalid."""
    if isinstance(resolution, bool):
        raise DatasetConfigError("resolution", f"expected one side or HxW, got {resolution!r}")
    try:
        height, width = image_size(resolution)
    except (ValueError, TypeError) as e:
        raise DatasetConfigError("resolution", str(e)) from None
    return height if height == width else (height, width)


def validate_dataset_config(cfg: Mapping[str, Any] | ml_collections.ConfigDict) -> DatasetConfig:
    """Checks the dataset settings at start-up (keys, types, values, paths) and returns them typed.

    Raises DatasetConfigError naming the key, e.g. "dataset.resolution: must be a power of two, got 48".
    """
    fields = {f.name: f for f in dataclasses.fields(DatasetConfig)}
    values = dict(cfg.items())
    for key, value in values.items():
        if key not in fields:
            raise DatasetConfigError(key, f"unknown key; known keys: {', '.join(fields)}")
        if key != "resolution":
            _check_type(key, value, type(fields[key].default))
    if "resolution" in values:
        values["resolution"] = normal_resolution(values["resolution"])
    config = DatasetConfig(**values)
    if config.source not in SOURCES:
        raise DatasetConfigError("source", f"unknown source {config.source!r}; expected one of {', '.join(SOURCES)}")
    if config.fit not in FITS:
        raise DatasetConfigError("fit", f"must be one of {', '.join(FITS)}, got {config.fit!r}")
    if config.channels not in (1, 3):
        raise DatasetConfigError("channels", f"must be 1 or 3, got {config.channels}")
    for key in ("max_size", "num_threads"):
        if getattr(config, key) < 0:
            raise DatasetConfigError(key, f"must be >= 0, got {getattr(config, key)}")
    if config.captions and config.source not in ("folder", "zip"):
        raise DatasetConfigError("captions", f"only folders and zips have captions, not source={config.source!r}")
    if config.captions and config.use_labels:
        raise DatasetConfigError("captions", "captions replace class labels; turn use_labels off")
    if config.source in ("folder", "zip", "tfrecord"):
        _check_path(config)
    if config.source == "tfds" and not config.name:
        raise DatasetConfigError("name", "required for source='tfds' (a TFDS dataset name such as 'mnist')")
    return config
