"""Optional dependencies: import them lazily, and say which extra installs them.

The one mechanism for extras: :func:`require` where the feature needs the package (a :class:`MissingExtra`,
an ``ImportError`` naming the extra, when it is absent), :func:`available` where it is only a choice, and
:func:`pyplot` for plots. Modules that need an extra at import (the HF and Lightning callbacks) call
:func:`require` at their top, so ``import trainwise.integrations.hf`` fails with the extra's name.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtra", "require", "available", "pyplot"]


class MissingExtra(ImportError):
    """An optional package is not installed; ``extra`` names the trainwise extra that installs it."""

    def __init__(self, message: str, extra: str):
        super().__init__(message)
        self.extra = extra


def require(module: str, extra: str, purpose: str | None = None) -> ModuleType:
    """Import ``module`` or raise an ``ImportError`` naming the extra that provides it.

    >>> np = require("numpy", extra="core")
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        what = f" for {purpose}" if purpose else ""
        raise MissingExtra(
            f"trainwise needs the optional package {module.split('.')[0]!r}{what}; install the extra "
            f"{extra!r}: pip install -e '.[{extra}]' in a clone of trainwise (or pip install 'trainwise[{extra}]')",
            extra,
        ) from exc


def available(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it.

    >>> available("numpy"), available("surely_not_installed_anywhere")
    (True, False)
    """
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (extra ``plot``)."""
    matplotlib = require("matplotlib", extra="plot", purpose="plots")
    matplotlib.use("Agg", force=False)
    return require("matplotlib.pyplot", extra="plot", purpose="plots")
