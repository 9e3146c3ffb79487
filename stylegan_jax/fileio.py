"""File access that works on local paths and on remote ones such as gs:// (through tf.io.gfile).

Local paths use the standard library directly, so nothing imports TensorFlow for them; a path with
a URL scheme ("gs://bucket/run", "ram://x") goes through TensorFlow's file systems.
"""
from __future__ import annotations

import os
import posixpath
from typing import IO, Iterator


def is_remote(path: str | os.PathLike) -> bool:
    """True for paths with a URL scheme (gs://, s3://, ram://...), which need TensorFlow's file systems."""
    return "://" in os.fspath(path)


def _gfile():
    from stylegan_jax.data._tf import tensorflow

    return tensorflow().io.gfile


def join(path: str | os.PathLike, *parts: str) -> str:
    """Joins path components, with '/' for remote paths."""
    path = os.fspath(path)
    return posixpath.join(path, *parts) if is_remote(path) else os.path.join(path, *parts)


def open_file(path: str | os.PathLike, mode: str = "r") -> IO:
    """Opens a local or remote file (modes r, rb, w, wb, a)."""
    path = os.fspath(path)
    return _gfile().GFile(path, mode) if is_remote(path) else open(path, mode)


def exists(path: str | os.PathLike) -> bool:
    """Whether a local or remote file or folder exists."""
    return _gfile().exists(os.fspath(path)) if is_remote(path) else os.path.exists(path)


def isdir(path: str | os.PathLike) -> bool:
    """Whether a local or remote path is a folder."""
    return _gfile().isdir(os.fspath(path)) if is_remote(path) else os.path.isdir(path)


def makedirs(path: str | os.PathLike) -> None:
    """Creates a folder and its parents (no error when it exists)."""
    if is_remote(path):
        _gfile().makedirs(os.fspath(path))
    else:
        os.makedirs(path, exist_ok=True)


def rename(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Renames a local or remote file or folder."""
    if is_remote(src):
        _gfile().rename(os.fspath(src), os.fspath(dst))
    else:
        os.rename(src, dst)


def getsize(path: str | os.PathLike) -> int:
    """The size of a local or remote file in bytes."""
    return _gfile().stat(os.fspath(path)).length if is_remote(path) else os.path.getsize(path)


def walk_files(root: str | os.PathLike) -> Iterator[str]:
    """Every file below `root` (recursively), as a '/'-separated name relative to `root`."""
    root = os.fspath(root)
    walker = _gfile().walk(root) if is_remote(root) else os.walk(root)
    for folder, _, files in walker:
        relative = os.path.relpath(folder, root) if not is_remote(root) else folder[len(root):].strip("/")
        for name in files:
            yield posixpath.join(relative.replace(os.sep, "/"), name) if relative not in ("", ".") else name


def absolute(path: str | os.PathLike) -> str:
    """An absolute local path, or the remote path unchanged."""
    return os.fspath(path) if is_remote(path) else os.path.abspath(path)
