"""Optional dependencies: import them lazily, and say which extra installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtra", "require"]


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
