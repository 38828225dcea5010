"""Package attributes loaded on first use (PEP 562): ``--help`` need not import what only a command's run uses."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_getattr(package: str, home: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that takes ``name`` from the submodule ``package.home[name]`` when first asked."""

    def __getattr__(name: str) -> Any:
        if name in home:
            return getattr(importlib.import_module(f"{package}.{home[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
