"""Readers that fail loudly: datatrove's JSONL, Parquet and WARC readers plus plain text, with rejects.

datatrove's readers log a warning and skip a malformed line, and its HTML extraction returns nothing
when ``lxml_html_clean`` is missing. Here every malformed line, unreadable file, record without text or
page whose extraction failed is counted and written to ``rejects/<source>_<rank>.jsonl`` with its
location (file, line or record number) and the error; the run goes on. Per-source counts of documents
read and rejected go to ``counts/<source>_<rank>.json`` so the driver can refuse a run that read nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from trainwise._optional import require

__all__ = ["FORMATS", "detect_format", "expand_paths", "make_reader", "check_html_extraction"]

FORMATS = ("jsonl", "parquet", "warc", "text")
_SUFFIXES = {
    ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".warc": "warc",
    ".arc": "warc", ".txt": "text", ".text": "text", ".md": "text",
}


def detect_format(path: str | Path) -> str:
    """Format from the file name, ignoring a ``.gz``/``.zst`` suffix (``a.json.gz`` → ``jsonl``)."""
    suffixes = [s.lower() for s in Path(path).suffixes if s.lower() not in (".gz", ".zst", ".zstd", ".bz2")]
    if suffixes and suffixes[-1] in _SUFFIXES:
        return _SUFFIXES[suffixes[-1]]
    raise ValueError(f"cannot tell the format of {str(path)!r}; set 'format' to one of {FORMATS}")


def expand_paths(paths: Iterable[str | Path], fmt: str | None = None) -> list[Path]:
    """Files named, plus the files under folders named (recursively, matching ``fmt`` when given)."""
    files: list[Path] = []
    for item in paths:
        path = Path(item).expanduser()
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
                try:
                    child_fmt = detect_format(child)
                except ValueError:
                    continue
                if fmt is None or child_fmt == fmt:
                    files.append(child.resolve())
        elif path.is_file():
            files.append(path.resolve())
        else:
            raise FileNotFoundError(f"input path {str(path)!r} does not exist")
    return files


def check_html_extraction() -> None:
    """Raise when HTML extraction would silently yield nothing (trafilatura needs ``lxml_html_clean``)."""
    require("trafilatura", extra="data", purpose="HTML text extraction")
    require("lxml_html_clean", extra="data", purpose="HTML text extraction (trafilatura's cleaner)")
    from datatrove.pipeline.extractors import Trafilatura

    page = ("<html><head><title>t</title></head><body><nav>Home | About</nav><article><p>"
            + "The committee reviewed the annual report and approved the budget for the next year. " * 5
            + "</p></article></body></html>")
    if not (Trafilatura(favour_precision=True, deduplicate=False, timeout=10).extract(page) or "").strip():
        raise RuntimeError("HTML extraction returned no text for a plain test page; check that trafilatura and "
                           "lxml_html_clean are installed (pip install 'trainwise[data]')")


def make_reader(
    source: str,
    files: list[Path],
    fmt: str,
    work_folder: str,
    text_key: str = "text",
    id_key: str = "id",
    kind: str | None = None,
    text_mode: str = "file",
) -> Any:
    """A datatrove reader over ``files`` (sharded by rank) tagging each document with ``source``/``kind``.

    ``text_mode`` for plain text: ``"file"`` (one document per file) or ``"paragraph"`` (split on blank lines).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown input format {fmt!r}; expected one of {FORMATS}")
    if text_mode not in ("file", "paragraph"):
        raise ValueError(f"text_mode must be 'file' or 'paragraph', got {text_mode!r}")
    require("datatrove", extra="data", purpose="reading corpora")
    from datatrove.io import get_datafolder

    from trainwise.data.pretrain import reader_steps

    default_metadata: dict[str, Any] = {"source": source}
    if kind:
        default_metadata["kind"] = kind
    relative = [str(f).lstrip("/") for f in files]
    common = dict(source=source, files=relative, work_folder=work_folder, text_mode=text_mode,
                  data_folder=get_datafolder("/"), text_key=text_key, id_key=id_key, default_metadata=default_metadata)
    if fmt == "jsonl":
        require("orjson", extra="data", purpose="reading JSONL")
        return reader_steps.RejectingJsonlReader(**common)
    if fmt == "parquet":
        require("pyarrow", extra="data", purpose="reading Parquet")
        return reader_steps.RejectingParquetReader(**common)
    if fmt == "warc":
        require("warcio", extra="data", purpose="reading WARC")
        check_html_extraction()
        return reader_steps.ExtractingWarcReader(**common)
    return reader_steps.TextReader(**{**common, "text_key": "text", "id_key": "id"})
