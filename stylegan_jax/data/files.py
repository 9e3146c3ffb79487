"""Folders and zip archives (local or remote) of PNG/JPEG images: listing, reading, and their class labels."""
from __future__ import annotations

import json
import threading
import zipfile
from typing import BinaryIO

import numpy as np

from stylegan_jax import fileio
from stylegan_jax.data.config import DatasetConfigError
from stylegan_jax.data.decoding import IMAGE_SUFFIXES

LABELS_FILE = "dataset.json"


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


class ImageFiles:
    """The image files under a folder or inside a zip, by sorted '/'-separated relative name."""

    def __init__(self, path: str):
        self.path = path
        self.is_zip = not fileio.isdir(path)
        self._local = threading.local()
        if self.is_zip:
            try:
                all_names = [n for n in self._zip().namelist() if not n.endswith("/")]
            except zipfile.BadZipFile as e:
                raise DatasetConfigError("path", f"{path} is not a readable zip archive: {e}") from None
        else:
            all_names = list(fileio.walk_files(path))
        self._all = set(all_names)
        self.names = sorted(n for n in all_names if _is_image(n))
        if not self.names:
            raise DatasetConfigError("path", f"no PNG/JPEG images in {path}")

    @property
    def all_names(self) -> frozenset[str]:
        """Every file's relative name, images or not (e.g. caption and label files)."""
        return frozenset(self._all)

    def _zip(self) -> zipfile.ZipFile:
        # One archive handle per thread: ZipFile objects must not be shared between threads.
        if getattr(self._local, "zip", None) is None:
            self._local.zip = zipfile.ZipFile(fileio.open_file(self.path, "rb"))
        return self._local.zip

    def open(self, name: str) -> BinaryIO:
        """The file `name` (a relative name from `all_names`), opened for reading bytes."""
        if self.is_zip:
            return self._zip().open(name)
        return fileio.open_file(fileio.join(self.path, name), "rb")

    def describe(self, name: str) -> str:
        """Where the file is, for messages: its full path, or ARCHIVE.zip:NAME."""
        return f"{self.path}:{name}" if self.is_zip else fileio.join(self.path, name)

    def labels(self) -> tuple[np.ndarray, int]:
        """int64 class labels of `names` and the class count, from dataset.json or else from class sub-folders."""
        if LABELS_FILE in self._all:
            return self._json_labels()
        top_folders = [n.split("/")[0] if "/" in n else None for n in self.names]
        if None in top_folders:
            raise DatasetConfigError("use_labels", f"{self.path} has no {LABELS_FILE} and not every image is in a "
                                                   f"class sub-folder (e.g. {self.names[top_folders.index(None)]})")
        classes = sorted(set(top_folders))
        labels = np.searchsorted(np.array(classes), np.array(top_folders)).astype(np.int64)
        return labels, len(classes)

    def _json_labels(self) -> tuple[np.ndarray, int]:
        where = self.describe(LABELS_FILE)
        try:
            with self.open(LABELS_FILE) as f:
                pairs = json.load(f)["labels"]
            if pairs is None:
                raise ValueError('"labels" is null')
            table = {str(name).replace("\\", "/"): label for name, label in pairs}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DatasetConfigError("use_labels", f"{where} is not a valid label file: "
                                                   f"{type(e).__name__}: {e}") from None
        missing = [n for n in self.names if n not in table]
        if missing:
            raise DatasetConfigError("use_labels", f"{where} has no label for {len(missing)} image(s), "
                                                   f"e.g. {missing[:3]}")
        labels = [table[n] for n in self.names]
        bad = [x for x in labels if not isinstance(x, int) or isinstance(x, bool) or x < 0]
        if bad:
            raise DatasetConfigError("use_labels", f"{where}: labels must be integers >= 0, got e.g. {bad[:3]}")
        labels = np.array(labels, np.int64)
        return labels, int(labels.max()) + 1
