"""Import CompressAI without the two heavy packages its codecs never use.

``import compressai`` loads every sub-package, including a registry of image
*transforms* (torchvision) and point-cloud datasets (torch-geometric).  Those
two imports pull in ``torch._dynamo`` and cost seconds per process: in every
encode worker and, worse, in the packaged decoder, whose start-up counts in
the leaderboard's decoding time.  Nothing in image coding touches them.

:func:`compressai_without_extras` imports CompressAI while those two names
resolve to inert placeholder modules, then withdraws the placeholders, so a
later ``import torchvision`` anywhere still loads the real package.  Where the
real package is already imported, it is used as is.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager

UNUSED_BY_IMAGE_CODECS = ("torchvision", "torch_geometric")


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


def compressai_without_extras() -> types.ModuleType:
    """``import compressai``, skipping torchvision and torch-geometric if not yet loaded."""
    if "compressai" in sys.modules:
        return sys.modules["compressai"]
    with _placeholders_for(UNUSED_BY_IMAGE_CODECS):
        import compressai
    return compressai
