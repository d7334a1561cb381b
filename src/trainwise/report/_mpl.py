"""Lazy matplotlib import with a headless backend."""

from __future__ import annotations

from types import ModuleType

from trainwise._optional import require

__all__ = ["pyplot"]


def pyplot() -> ModuleType:
    """Return ``matplotlib.pyplot`` using the non-interactive Agg backend (extra ``[plot]``)."""
    matplotlib = require("matplotlib", extra="plot", purpose="plots")
    matplotlib.use("Agg", force=False)
    return require("matplotlib.pyplot", extra="plot", purpose="plots")
