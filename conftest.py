"""Doctests of ``src/trainwise`` run with the tests (``--doctest-modules``, pyproject ``testpaths``).

A module that needs an optional extra at import (a module-level ``require("pkg", extra=...)``, as the HF and
Lightning callbacks do) is left out of collection when that package is not installed, instead of failing it; a
module without any ``>>>`` example is not imported for doctests at all.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

SRC = Path(__file__).resolve().parent / "src" / "trainwise"


def _required_at_import(path: Path) -> list[str]:
    """Packages named by module-level ``require("pkg", ...)`` calls."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError):
        return []
    found = []
    for node in tree.body:
        call = node.value if isinstance(node, (ast.Expr, ast.Assign)) else None
        if (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "require" and call.args
                and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)):
            found.append(call.args[0].value.split(".")[0])
    return found


def _missing(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is None
    except (ImportError, ValueError):
        return True


def _skip(path: Path) -> bool:
    text = path.read_text(encoding="utf-8", errors="replace")
    if ">>>" not in text:  # no doctest: importing it (transformers, lightning, datatrove) would only cost time
        return True
    return any(_missing(package) for package in _required_at_import(path))


collect_ignore = [str(path) for path in sorted(SRC.rglob("*.py")) if _skip(path)]
collect_ignore.append(str(SRC / "__main__.py"))  # runs the CLI; nothing to doctest
