"""Helpers shared by subcommands: formatting tables and numbers."""

from __future__ import annotations

import argparse
import math
from typing import Any, Sequence

from trainwise._format import short

__all__ = ["fmt", "fmt_pm", "table", "print_json", "number", "whole", "positive_float", "fraction", "bounded_float",
           "learning_rate", "MAX_LR"]


def number(name: str, what: str, *, whole: bool = False, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False):
    """An argparse type: a finite number (a whole one with ``whole``) within ``[low, high]`` (``low_open``/``high_open``
    exclude the ends). Anything else is refused with the option's ``name``, what is allowed (``what``) and the value."""
    def parse(text: str):
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be {what}, got {text!r}") from None
        inside = math.isfinite(value)
        if inside and low is not None:
            inside = value > low if low_open else value >= low
        if inside and high is not None:
            inside = value < high if high_open else value <= high
        if not inside:
            raise argparse.ArgumentTypeError(f"{name} must be {what}, got {text!r}")
        return value
    return parse


def whole(name: str, low: int = 1):
    """A whole number ``>= low``."""
    return number(name, f"a whole number >= {low}", whole=True, low=low)


def positive_float(name: str):
    """A positive, finite number."""
    return number(name, "a positive, finite number", low=0.0, low_open=True)


#: the largest learning rate an option accepts: a larger step diverges at once in any model, and past float32's
#: range (3.4e38) torch cannot even apply it ("value cannot be converted to type float without overflow")
MAX_LR = 1e6


def learning_rate(name: str):
    """A learning rate, ``0 < lr <= MAX_LR``."""
    return number(name, f"a learning rate in (0, {MAX_LR:g}]", low=0.0, low_open=True, high=MAX_LR)


def fraction(name: str):
    """A number strictly between 0 and 1."""
    return number(name, "between 0 and 1 (exclusive)", low=0.0, high=1.0, low_open=True, high_open=True)


def bounded_float(name: str, low: float, high: float = math.inf, low_open: bool = False, high_open: bool = False):
    """A finite number in ``[low, high]`` (``(`` / ``)`` where ``low_open`` / ``high_open``).

    >>> bounded_float("--near-threshold", 0, 1, low_open=True)("0.75")
    0.75
    """
    span = (f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}" if math.isfinite(high)
            else f"{'>' if low_open else '>='} {low:g}")
    return number(name, f"a finite number in {span}" if math.isfinite(high) else f"a finite number {span}", low=low,
                  high=high if math.isfinite(high) else None, low_open=low_open, high_open=high_open)


def fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "—"
        if abs(x) >= 1000:
            return short(x, digits)  # 1.94k, as the plan and the report print it
        return f"{x:.{digits}g}"
    return str(x)


def fmt_pm(entry: dict | None, digits: int = 3, positive: bool = True) -> str:
    """``value ± stderr`` from a ``{"value", "stderr"}`` dict; ``—`` when absent.

    Noise scales and ``ε_max`` are positive by definition: with ``positive`` a value that is not (a ratio whose
    denominator was not measurably positive) prints as ``not resolved``, never as a number.
    """
    if not entry or entry.get("value") is None:
        return "—"
    value = entry["value"]
    if positive and (not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0):
        return "not resolved"
    err = entry.get("stderr")
    return f"{fmt(entry['value'], digits)} ± {fmt(err, 2)}" if err is not None else fmt(entry["value"], digits)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A plain-text table with right-aligned numeric columns."""
    cells = [[str(h) for h in headers]] + [[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    align = align or "l" + "r" * (len(headers) - 1)
    lines = []
    for k, row in enumerate(cells):
        parts = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align)]
        lines.append("  ".join(parts))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_json(obj: Any) -> None:
    """Strict JSON on stdout (``null``, never ``NaN``): :func:`trainwise._io.print_json`."""
    from trainwise._io import print_json as _print_json

    _print_json(obj)
