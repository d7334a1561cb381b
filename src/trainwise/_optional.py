"""Optional dependencies: import them lazily, and say which extra installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, extra: str, purpose: str | None = None) -> ModuleType:
    """Import ``module`` or raise an ``ImportError`` naming the extra that provides it.

    >>> np = require("numpy", extra="core")
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        what = f" for {purpose}" if purpose else ""
        raise ImportError(
            f"trainwise needs the optional package {module.split('.')[0]!r}{what}; "
            f"install it with: pip install 'trainwise[{extra}]'"
        ) from exc
