"""Names that moved: a module ``__getattr__`` that finds them in their new module and says so, loudly."""

from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable

__all__ = ["moved", "warn_moved"]


def warn_moved(old: str, new: str, stacklevel: int = 3) -> None:
    warnings.warn(f"{old} moved to {new}; import it from there (the old name will be removed)",
                  DeprecationWarning, stacklevel=stacklevel)


def moved(old_module: str, names: dict[str, str]) -> Callable[[str], Any]:
    """``__getattr__`` for ``old_module``: each name in ``names`` (name → new module) is imported from its new
    module on first access, with a :class:`DeprecationWarning` naming the new place."""

    def __getattr__(name: str) -> Any:
        new_module = names.get(name)
        if new_module is None:
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        warn_moved(f"{old_module}.{name}", f"{new_module}.{name}")
        return getattr(importlib.import_module(new_module), name)

    return __getattr__
