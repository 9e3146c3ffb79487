"""Lets timm and open_clip import where torchvision cannot (the reference models never call it).

PyPI's torchvision wheels do not load beside the CPU build of torch used here, and timm and open_clip
import torchvision's transforms and datasets at import time. `install()` registers a stand-in package in
which every submodule exists and every name is an inert class; it does nothing when the real one imports.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types


class _InertMeta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _inert_class(name)


def _inert_class(name: str) -> type:
    return _InertMeta(name, (), {"__init__": lambda self, *args, **kwargs: None})


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _inert_class(name)


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


def install() -> None:
    """Use the real torchvision when it imports, else the inert stand-in."""
    try:
        import torchvision  # noqa: F401
    except Exception:
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        sys.meta_path.insert(0, _StubFinder())
