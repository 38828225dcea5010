"""Typer's help renderer without the two Rich modules this CLI's help never uses.

``typer.rich_utils`` (loaded for every ``--help`` and usage error) imports ``rich.markdown`` (markdown-it, Pygments)
and ``rich.traceback`` (attrs) at module level: about half of ``minerwatch --help``'s start-up. It uses ``Markdown``
only for ``rich_markup_mode="markdown"`` and ``Traceback`` only for pretty exceptions; this app uses Rich markup and
turns pretty exceptions off. While ``typer.rich_utils`` executes, those two modules are stand-ins whose classes
import the real class on first use (a call or a class attribute), so nothing changes but when they load. A typer
release that takes another name from them gets the real modules.
"""

from __future__ import annotations

import importlib
import sys
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType
from typing import Any

TARGET = "typer.rich_utils"
DEFERRED = {"rich.markdown": ("Markdown",), "rich.traceback": ("Traceback",)}


class _DeferredClass(type):
    """Metaclass of a stand-in class: calling it, reading its attributes or isinstance loads the real class."""

    _module: str

    def real(cls) -> type:
        return getattr(importlib.import_module(cls._module), cls.__name__)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls.real()(*args, **kwargs)

    def __getattr__(cls, name: str) -> Any:
        return getattr(cls.real(), name)

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, cls.real())


class _StandIn(ModuleType):
    """Offers only the deferred names; any other ``from … import`` fails, and the real module is used instead."""

    def __init__(self, name: str, names: tuple[str, ...]) -> None:
        super().__init__(name)
        for attr in names:
            setattr(self, attr, _DeferredClass(attr, (), {"_module": name}))


class _Loader:  # importlib's loader protocol (importlib.abc is not imported: it loads importlib.resources)
    def __init__(self, real: Any) -> None:
        self.real = real

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.real.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        stand_ins = [name for name in DEFERRED if name not in sys.modules]
        for name in stand_ins:
            sys.modules[name] = _StandIn(name, DEFERRED[name])
        try:
            self.real.exec_module(module)
        except ImportError:
            _drop(stand_ins)
            self.real.exec_module(module)
        finally:
            _drop(stand_ins)


def _drop(names: list[str]) -> None:
    for name in names:
        if isinstance(sys.modules.get(name), _StandIn):
            del sys.modules[name]


class _Finder:
    def find_spec(self, fullname: str, path: Any = None, target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname != TARGET:
            return None
        spec = PathFinder.find_spec(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


def install() -> None:
    """Defer the two modules for the next import of ``typer.rich_utils`` (nothing to do once it is loaded)."""
    if TARGET not in sys.modules and not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
