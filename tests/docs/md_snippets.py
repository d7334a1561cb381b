"""Run the ```python blocks of a Markdown page, in order, in one namespace, as a reader would paste them.

Conventions (shared by README.md and docs/):

* a block marked as a fragment is not run: ```` ```python title="fragment" ```` (the site shows the title),
  or an HTML comment ``<!-- fragment -->`` on the line before the fence (invisible on GitHub);
* a python block titled with a file name (```` ```python title="my_task.py" ````) is also written to that file
  in the working directory before it runs, so later blocks and commands can use it;
* a ```` ```text title="output" ```` block right after a python block is that block's expected stdout.
  Numbers are compared with a relative tolerance (``rtol``, for timing- and platform-dependent
  digits); every other token must match exactly. A line ``...`` in the expected output matches any run of lines.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Block", "extract_blocks", "run_page", "compare_output"]

_FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)\s*(.*)$")
_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass
class Block:
    lang: str
    info: str
    code: str
    line: int  # 1-based line of the opening fence
    section: str  # the nearest heading above the block
    chapter: str  # the nearest level-2 heading (``## ...``) above the block
    fragment: bool
    expected_output: str | None = None

    @property
    def is_python(self) -> bool:
        return self.lang in ("python", "py")


def extract_blocks(path: str | Path) -> list[Block]:
    """Every fenced block of ``path``, with its section and markers; outputs attached to the block before."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    section, chapter, i = "", "", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):  # fenced bodies are skipped below, so this is a heading
            section = line.lstrip("#").strip()
            if line.startswith("## "):
                chapter = section
        match = _FENCE.match(line)
        if not match:
            i += 1
            continue
        indent, fence, lang, info = match.groups()
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1
        previous = lines[start - 1].strip() if start else ""
        fragment = 'title="fragment"' in info or previous == "<!-- fragment -->"
        block = Block(lang.lower(), info, "\n".join(body) + "\n", start + 1, section, chapter, fragment)
        if lang.lower() == "text" and 'title="output"' in info and blocks and blocks[-1].is_python:
            blocks[-1].expected_output = block.code
        blocks.append(block)
    return blocks


def _tokens(text: str) -> list[str]:
    return text.split()


def _numbers_match(expected: str, actual: str, rtol: float) -> bool:
    e_parts, a_parts = _NUMBER.split(expected), _NUMBER.split(actual)
    if e_parts != a_parts:
        return False
    for e, a in zip(_NUMBER.findall(expected), _NUMBER.findall(actual)):
        ev, av = float(e.replace(",", "")), float(a.replace(",", ""))
        if not math.isclose(ev, av, rel_tol=rtol, abs_tol=rtol * 1e-3):
            return False
    return True


def compare_output(expected: str, actual: str, rtol: float = 0.05) -> str | None:
    """``None`` when ``actual`` matches ``expected`` (see the module docstring), else a message."""
    exp_lines = [line.rstrip() for line in expected.strip().splitlines()]
    act_lines = [line.rstrip() for line in actual.strip().splitlines()]

    def match(ei: int, ai: int) -> bool:
        if ei == len(exp_lines):
            return ai == len(act_lines)
        if exp_lines[ei].strip() == "...":
            return any(match(ei + 1, k) for k in range(ai, len(act_lines) + 1))
        if ai == len(act_lines):
            return False
        e, a = " ".join(_tokens(exp_lines[ei])), " ".join(_tokens(act_lines[ai]))
        return _numbers_match(e, a, rtol) and match(ei + 1, ai + 1)

    if match(0, 0):
        return None
    return "expected output:\n" + expected.strip() + "\n\nactual output:\n" + actual.strip()


def run_page(path: str | Path, workdir: str | Path, skip_sections: tuple[str, ...] = (), rtol: float = 0.05) -> int:
    """Run every non-fragment python block of ``path`` in ``workdir``; return how many ran.

    ``skip_sections``: level-2 headings (``## ...``) whose blocks are not run.

    Raises ``AssertionError`` naming the file and line of the first block that fails or prints
    something other than its output block.
    """
    import os

    namespace: dict = {"__name__": "__snippets__"}
    ran = 0
    old = os.getcwd()
    os.chdir(workdir)
    try:
        for block in extract_blocks(path):
            if not block.is_python or block.fragment or block.chapter in skip_sections:
                continue
            where = f"{path}:{block.line} ({block.section})"
            named = re.search(r'title="([\w.-]+\.py)"', block.info)
            if named:
                Path(named.group(1)).write_text(block.code, encoding="utf-8")
            buffer = io.StringIO()
            try:
                with contextlib.redirect_stdout(buffer):
                    exec(compile(block.code, where, "exec"), namespace)
            except Exception as exc:  # noqa: BLE001 - re-raised with the block's location
                raise AssertionError(f"{where}: {type(exc).__name__}: {exc}\n--- stdout so far:\n{buffer.getvalue()}") from exc
            if block.expected_output is not None:
                problem = compare_output(block.expected_output, buffer.getvalue(), rtol)
                assert problem is None, f"{where}: output differs\n{problem}"
            ran += 1
    finally:
        os.chdir(old)
    return ran
