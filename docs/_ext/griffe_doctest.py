"""Griffe extension for the docs build: fence bare doctest blocks (``>>>``) of docstrings as ``pycon`` code.

Our docstrings carry runnable doctests outside any "Examples:" section. Left bare, Markdown reads
``plan["recommendation"]["batch_size"]`` as a reference link and the build fails on it; fenced, they render
as code. Only the documentation build uses this; the docstrings themselves are unchanged.
"""

from __future__ import annotations

from typing import Any

import griffe

__all__ = ["FenceDoctests", "fence_doctests"]


def fence_doctests(text: str) -> str:
    """Wrap each run of lines starting with ``>>>`` (and the output lines after it) in a pycon fence."""
    lines, out, i = text.splitlines(), [], 0
    in_fence = False
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith("```"):
            in_fence = not in_fence
        if in_fence or not stripped.startswith(">>>"):
            out.append(lines[i])
            i += 1
            continue
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        block = []
        while i < len(lines) and lines[i].strip() and lines[i].startswith(indent):
            block.append(lines[i][len(indent):])
            i += 1
        out.extend([f"{indent}```pycon", *(f"{indent}{line}" for line in block), f"{indent}```"])
    return "\n".join(out)


class FenceDoctests(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
