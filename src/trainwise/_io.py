"""One way to write JSON: strict (``NaN``/``inf`` become ``null``), numpy and paths converted, files replaced atomically."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["strict", "dumps", "write_json", "print_json", "JsonlSink"]


def strict(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` and numpy scalars, tuples and paths made plain.

    >>> strict({"a": float("nan"), "b": (1.0, float("inf"))})
    {'a': None, 'b': [1.0, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "to_dict") and callable(value.to_dict):  # typed results (trainwise.results), Measured
        return strict(value.to_dict())
    if isinstance(value, Mapping):
        return {str(k): strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return strict(value.item())
    return value


def dumps(value: Any, indent: int | None = 1) -> str:
    """Strict JSON text (never ``NaN``)."""
    return json.dumps(strict(value), indent=indent, allow_nan=False, default=str, ensure_ascii=False)


def write_json(path: str | Path, value: Any, indent: int | None = 1) -> Path:
    """Write strict JSON to ``path`` through a temporary file, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(value, indent) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def print_json(value: Any) -> None:
    sys.stdout.write(dumps(value) + "\n")


class JsonlSink:
    """Append records to ``path``, one JSON object per line (the monitor's ``noise.jsonl``, the controller's log).

    Lines are ``json.dumps`` of the record as it is (a log keeps ``NaN`` where a step had no estimate).
    ``make_dirs``: create the parent folder now; otherwise on the first write.
    """

    def __init__(self, path: str | Path, make_dirs: bool = True):
        self.path = Path(path)
        if make_dirs:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def has_content(self) -> bool:
        """Whether the file already holds something (a resumed run appends to it)."""
        return self.path.exists() and self.path.stat().st_size > 0

    def write(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def close(self) -> None:
        pass
