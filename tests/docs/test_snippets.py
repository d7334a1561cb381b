"""Every ```python block of the README and the docs runs, in order, as a reader would paste it, and prints
what the page says it prints (see ``md_snippets.py`` for the fragment and output markers)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from md_snippets import compare_output, extract_blocks, run_page  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

FAST_PAGES = ["docs/getting-started.md", "docs/tutorials/pytorch-loop.md", "docs/science.md", "docs/index.md",
              "docs/adapt.md", "docs/optim.md", "docs/critical-batch.md", "docs/sft-data.md", "docs/pretrain-data.md"]
# pages whose blocks train with transformers, Lightning or the sweep: tens of seconds each
SLOW_PAGES = ["docs/tutorials/task-file.md", "docs/tutorials/hf-trainer.md", "docs/tutorials/lightning.md",
              "docs/tutorials/torchrun.md"]


def test_readme_snippets(tmp_path):
    ran = run_page(ROOT / "README.md", tmp_path)
    assert ran >= 5


@pytest.mark.parametrize("page", FAST_PAGES)
def test_docs_page_snippets(page, tmp_path):
    run_page(ROOT / page, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("page", SLOW_PAGES)
def test_tutorial_snippets(page, tmp_path):
    for extra in ("transformers", "lightning"):
        if extra in page:
            pytest.importorskip(extra)
    run_page(ROOT / page, tmp_path)


def test_every_page_is_covered():
    """A new page with python blocks must be added to one of the lists above."""
    covered = set(FAST_PAGES) | set(SLOW_PAGES)
    for path in sorted((ROOT / "docs").rglob("*.md")):
        rel = path.relative_to(ROOT).as_posix()
        if any(b.is_python and not b.fragment for b in extract_blocks(path)):
            assert rel in covered, f"{rel} has python blocks that no test runs"


def test_output_comparison():
    assert compare_output("B_simple ≈ 531 examples", "B_simple ≈ 540 examples\n") is None
    assert compare_output("B_simple ≈ 531 examples", "B_simple ≈ 800 examples") is not None
    assert compare_output("a\n...\nz 1.0", "a\nb\nc\nz 1.01") is None
    assert compare_output("a\n...\nz", "a\nb") is not None


def test_fragment_markers(tmp_path):
    page = tmp_path / "p.md"
    page.write_text('# T\n<!-- fragment -->\n```python\nundefined_name\n```\n\n```python title="fragment"\nx\n```\n'
                    '```python\nprint(2 + 2)\n```\n```text title="output"\n4\n```\n')
    blocks = [b for b in extract_blocks(page) if b.is_python]
    assert [b.fragment for b in blocks] == [True, True, False] and blocks[2].expected_output == "4\n"
    assert run_page(page, tmp_path) == 1
