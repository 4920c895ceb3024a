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
- pandas and ``scipy.stats`` are deferred: CompressAI's modules get a stand-in
  that imports the real one when one of its attributes is first used; the
  stand-ins leave ``sys.modules`` afterwards, so any other import is ordinary.
  (The standard library's ``importlib.util.LazyLoader`` does not do here: on
  Python 3.11 any attribute access loads the module, and both ``import pandas
  as pd`` and torch's ``inspect.getmodule`` touch ``__spec__`` / ``__file__``.)

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
    """Stands in for a module while CompressAI imports; imports the real one on first use.

    It carries the real module's ``__spec__``; other dunder names raise
    ``AttributeError`` until the real module is loaded (``__path__`` loads it:
    importing a sub-module is a use), so the import system and ``inspect`` can
    look at it without loading anything.  Only CompressAI's modules keep a
    reference: the stand-in leaves ``sys.modules`` when its import is done.
    """

    def __getattr__(self, name: str) -> object:
        real = sys.modules.get(self.__name__)
        if real is None or real is self:
            if name.startswith("__") and name != "__path__":
                raise AttributeError(name)
            if real is self:
                del sys.modules[self.__name__]
            real = importlib.import_module(self.__name__)
        return getattr(real, name)


@contextmanager
def _deferred(names: tuple[str, ...]) -> Iterator[None]:
    """Stand-ins for the installed, not yet imported ``names`` (in ``sys.modules`` and on
    their parent package) while the block runs; withdrawn after it, so that every
    later import anywhere is the ordinary one."""
    added = []
    for name in names:
        spec = None if name in sys.modules else importlib.util.find_spec(name)
        if spec is None:
            continue  # already real, or not installed: CompressAI's own import reports it
        module = _Deferred(name)
        module.__spec__ = spec
        sys.modules[name] = module
        _set_on_parent(name, module)
        added.append((name, module))
    try:
        yield
    finally:
        for name, module in added:
            if sys.modules.get(name) is module:
                del sys.modules[name]
                _set_on_parent(name, None)


def _set_on_parent(name: str, module: types.ModuleType | None) -> None:
    parent, _, child = name.rpartition(".")
    if not parent:
        return
    if module is not None:
        setattr(sys.modules[parent], child, module)
    elif child in vars(sys.modules[parent]):
        delattr(sys.modules[parent], child)


def compressai_without_extras() -> types.ModuleType:
    """``import compressai``: placeholders for torchvision and torch-geometric if not yet
    loaded, pandas and ``scipy.stats`` imported only when first used."""
    if "compressai" in sys.modules:
        return sys.modules["compressai"]
    with _deferred(DEFERRED), _placeholders_for(UNUSED_BY_IMAGE_CODECS):
        import compressai
    return compressai
