"""Import CompressAI without the heavy packages its image codecs never run.

``import compressai`` loads every sub-package, including a registry of image
*transforms* (torchvision), point-cloud datasets (torch-geometric, pandas) and
``scipy.stats`` (for one quantile, which ``models.conditional`` computes with
the standard library instead).  Together they cost seconds per process: in
every encode worker and, worse, in the packaged decoder, whose start-up counts
in the leaderboard's decoding time.

:func:`compressai_without_extras` imports CompressAI while

- torchvision and torch-geometric resolve to inert placeholder modules (CompressAI
  uses them at import time, as class bases and decorators), withdrawn afterwards,
  so a later ``import torchvision`` anywhere still loads the real package;
- pandas and ``scipy.stats`` are deferred: a stand-in module imports the real
  one when one of its attributes is first used.  (The standard library's
  ``importlib.util.LazyLoader`` does not do here: on Python 3.11 any attribute
  access loads the module, and both ``import pandas as pd`` and torch's
  ``inspect.getmodule`` touch ``__spec__`` / ``__file__`` of every module.)

Where a package is already imported, it is used as is.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager

UNUSED_BY_IMAGE_CODECS = ("torchvision", "torch_geometric")  # replaced by placeholders
DEFERRED = ("pandas", "scipy.stats")  # imported by CompressAI, never called by our codecs


class _Placeholder(types.ModuleType):
    """A module whose every public attribute is an empty class.

    Enough for CompressAI's import-time uses: class bases, a registry dict built
    from ``transforms.__dict__`` and torch-geometric's ``functional_transform``
    decorator (which returns the class unchanged).
    """

    __path__: list[str] = []  # a package, so sub-modules resolve to placeholders too

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        if name == "functional_transform":
            return lambda _name: (lambda cls: cls)
        value = type(name, (), {"__module__": self.__name__})
        setattr(self, name, value)
        return value


class _PlaceholderFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, roots: tuple[str, ...]):
        self.roots = roots

    def find_spec(self, fullname: str, path: object, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".", 1)[0] in self.roots:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _Placeholder(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        pass


@contextmanager
def _placeholders_for(roots: tuple[str, ...]) -> Iterator[None]:
    absent = tuple(r for r in roots if r not in sys.modules)
    finder = _PlaceholderFinder(absent)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n, m in sys.modules.items() if isinstance(m, _Placeholder)]:
            del sys.modules[name]


class _Deferred(types.ModuleType):
    """Stands in for a module until one of its public attributes is used, then imports it.

    It carries the real module's ``__spec__``.  Other dunder names do not load it
    (``__path__`` does: importing a sub-module is a use), so the import system and
    ``inspect`` can look at the stand-in without loading anything; once the real
    module is loaded, they are forwarded too.
    """

    def __getattr__(self, name: str) -> object:
        real = sys.modules.get(self.__name__)
        if real is None or isinstance(real, _Deferred):
            if name.startswith("__") and name != "__path__":
                raise AttributeError(name)
            real = _import_for_real(self.__name__)
        return getattr(real, name)


def _import_for_real(name: str) -> types.ModuleType:
    if isinstance(sys.modules.get(name), _Deferred):
        del sys.modules[name]
    module = importlib.import_module(name)
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module


def _defer(name: str) -> None:
    """Put a :class:`_Deferred` stand-in for ``name`` in ``sys.modules`` (and on its parent)."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None:
        return  # not installed: let CompressAI's own import report it
    module = _Deferred(name)
    module.__spec__ = spec
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)


def compressai_without_extras() -> types.ModuleType:
    """``import compressai``: placeholders for torchvision and torch-geometric if not yet
    loaded, pandas and ``scipy.stats`` imported only when first used."""
    if "compressai" in sys.modules:
        return sys.modules["compressai"]
    for name in DEFERRED:
        _defer(name)
    with _placeholders_for(UNUSED_BY_IMAGE_CODECS):
        import compressai
    return compressai
