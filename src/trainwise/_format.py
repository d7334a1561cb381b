"""One way to print a quantity compactly: ``1.5k``, ``20B``, ``3e-04`` (three significant digits by default)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["short"]

_SUFFIXES = ((1e15, "P"), (1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))


def short(value: Any, digits: int = 3, missing: str = "-") -> str:
    """``value`` with a k/M/B/T/P suffix past a thousand; ``missing`` for ``None`` or a non-finite number.

    >>> short(1536.0), short(2e10), short(0.00437), short(None), short(float("nan"), missing="–")
    ('1.54k', '20B', '0.00437', '-', '–')
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return str(value)
    for scale, suffix in _SUFFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g}{suffix}"
    return f"{value:.{digits}g}"
