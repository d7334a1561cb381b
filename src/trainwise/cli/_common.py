"""Helpers shared by subcommands: formatting tables and numbers."""

from __future__ import annotations

import argparse
import math
from typing import Any, Sequence

from trainwise._format import short

__all__ = ["fmt", "fmt_pm", "table", "print_json", "whole", "positive_float", "fraction", "bounded_float",
           "learning_rate", "MAX_LR"]


def whole(name: str, low: int = 1):
    """An argparse type: a whole number ``>= low``, refused with the option's name and the value otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number >= {low}, got {text!r}")
        return value
    return parse


def positive_float(name: str):
    """An argparse type: a positive, finite number."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a positive number, got {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"{name} must be a positive, finite number, got {text!r}")
        return value
    return parse


#: the largest learning rate an option accepts: a larger step diverges at once in any model, and past float32's
#: range (3.4e38) torch cannot even apply it ("value cannot be converted to type float without overflow")
MAX_LR = 1e6


def learning_rate(name: str):
    """An argparse type: a learning rate, ``0 < lr <= MAX_LR``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and 0 < value <= MAX_LR):
            raise argparse.ArgumentTypeError(f"{name} must be a learning rate in (0, {MAX_LR:g}], got {text!r}")
        return value
    return parse


def fraction(name: str):
    """An argparse type: a number strictly between 0 and 1."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number between 0 and 1, got {text!r}") from None
        if not 0.0 < value < 1.0:
            raise argparse.ArgumentTypeError(f"{name} must be between 0 and 1 (exclusive), got {text!r}")
        return value
    return parse


def bounded_float(name: str, low: float, high: float = math.inf, low_open: bool = False, high_open: bool = False):
    """An argparse type: a finite number in ``[low, high]`` (``(`` / ``)`` where ``low_open`` / ``high_open``).

    >>> bounded_float("--near-threshold", 0, 1, low_open=True)("0.75")
    0.75
    """
    span = (f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}" if math.isfinite(high)
            else f"{'>' if low_open else '>='} {low:g}")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        ok = (math.isfinite(value) and (value > low if low_open else value >= low)
              and (value < high if high_open else value <= high))
        if not ok:
            raise argparse.ArgumentTypeError(f"{name} must be a finite number {'in ' if math.isfinite(high) else ''}"
                                             f"{span}, got {text!r}")
        return value
    return parse


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
