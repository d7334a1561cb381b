"""Helpers shared by subcommands: formatting tables and numbers."""

from __future__ import annotations

import json
import math
import sys
from typing import Any, Sequence

__all__ = ["fmt", "fmt_pm", "table", "print_json"]


def fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "—"
        if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
            return f"{x:.{digits}g}"
        return f"{x:,.{digits}g}" if abs(x) >= 1000 else f"{x:.{digits}g}"
    return str(x)


def fmt_pm(entry: dict | None, digits: int = 3) -> str:
    """``value ± stderr`` from a ``{"value", "stderr"}`` dict."""
    if not entry or entry.get("value") is None:
        return "—"
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
    json.dump(obj, sys.stdout, indent=1, default=str)
    sys.stdout.write("\n")
