"""Readers that fail loudly: datatrove's JSONL, Parquet and WARC readers plus plain text, with rejects.

datatrove's readers log a warning and skip a malformed line, and its HTML extraction returns nothing
when ``lxml_html_clean`` is missing. Here every malformed line, unreadable file, record without text or
page whose extraction failed is counted and written to ``rejects/<source>_<rank>.jsonl`` with its
location (file, line or record number) and the error; the run goes on. Per-source counts of documents
read and rejected go to ``counts/<source>_<rank>.json`` so the driver can refuse a run that read nothing.
"""

from __future__ import annotations

import json
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
    from datatrove.pipeline.readers.base import BaseDiskReader

    default_metadata: dict[str, Any] = {"source": source}
    if kind:
        default_metadata["kind"] = kind
    relative = [str(f).lstrip("/") for f in files]

    class _RejectingMixin:
        """Per-rank reject file and counts; a sharded explicit file list instead of a folder listing."""

        def _start(self, rank: int) -> None:
            self._work = get_datafolder(work_folder)
            self._rank = rank
            self._n_read = 0
            self._n_rejected = 0
            self._rejects = self._work.open(f"rejects/{source}_{rank:05d}.jsonl", "wt")

        def reject(self, filepath: str, location: str, error: str, snippet: str = "") -> None:
            self._n_rejected += 1
            self.stat_update("rejected")
            self._rejects.write(json.dumps({"source": source, "file": "/" + filepath, "location": location,
                                            "error": error, "snippet": snippet[:200]}) + "\n")

        def _finish(self) -> None:
            self._rejects.close()
            with self._work.open(f"counts/{source}_{self._rank:05d}.json", "wt") as f:
                json.dump({"source": source, "read": self._n_read, "rejected": self._n_rejected}, f)

        def run(self, data=None, rank: int = 0, world_size: int = 1):
            if data:
                yield from data
            self._start(rank)
            try:
                for filepath in relative[rank::world_size]:
                    self.stat_update("input_files")
                    try:
                        for document in self.read_file(filepath):
                            self._n_read += 1
                            self.update_doc_stats(document)
                            yield document
                    except Exception as exc:  # an unreadable file must not stop the run
                        self.reject(filepath, "file", f"{type(exc).__name__}: {exc}")
            finally:
                self._finish()

        def get_document_from_dict(self, data: dict, source_file: str, id_in_file: int | str):
            text = data.get(self.text_key)
            if not isinstance(text, str) or not text.strip():
                keys = sorted(data)
                what = "missing" if text is None else ("empty" if isinstance(text, str) else f"a {type(text).__name__}")
                self.reject(source_file, f"record {id_in_file}",
                            f"text field {self.text_key!r} is {what}; keys: {keys[:10]}")
                return None
            document = super().get_document_from_dict(data, source_file, id_in_file)
            if document is not None:
                original = document.metadata.get("source")
                if original is not None and original != source:  # keep the input's own field as provenance
                    document.metadata["origin_source"] = original
                document.metadata["source"] = source
                document.metadata.setdefault("file_path", "/" + source_file)
                document.metadata.setdefault("record", id_in_file)
            return document

    common = dict(data_folder=get_datafolder("/"), text_key=text_key, id_key=id_key,
                  default_metadata=default_metadata)

    if fmt == "jsonl":
        require("orjson", extra="data", purpose="reading JSONL")
        from datatrove.pipeline.readers import JsonlReader

        class RejectingJsonlReader(_RejectingMixin, JsonlReader):
            name = "🐿 Jsonl (with rejects)"

            def read_file(self, filepath: str):
                import orjson

                with self.data_folder.open(filepath, "rb", compression=self.compression) as f:
                    line_number = 0
                    for line_number, line in enumerate(f, start=1):
                        if not line.strip():
                            continue
                        try:
                            row = orjson.loads(line)
                        except orjson.JSONDecodeError as exc:
                            self.reject(filepath, f"line {line_number}", f"malformed JSON: {exc}",
                                        line.decode("utf-8", "replace"))
                            continue
                        if not isinstance(row, dict):
                            self.reject(filepath, f"line {line_number}", f"expected a JSON object, got {type(row).__name__}",
                                        line.decode("utf-8", "replace"))
                            continue
                        document = self.get_document_from_dict(row, filepath, line_number)
                        if document is not None:
                            yield document

        return RejectingJsonlReader(**common)

    if fmt == "parquet":
        require("pyarrow", extra="data", purpose="reading Parquet")
        from datatrove.pipeline.readers import ParquetReader

        class RejectingParquetReader(_RejectingMixin, ParquetReader):
            name = "📒 Parquet (with rejects)"

        return RejectingParquetReader(**common)

    if fmt == "warc":
        require("warcio", extra="data", purpose="reading WARC")
        check_html_extraction()
        from datatrove.pipeline.extractors import Trafilatura
        from datatrove.pipeline.readers import WarcReader

        class ExtractingWarcReader(_RejectingMixin, WarcReader):
            name = "🕷 Warc + trafilatura (with rejects)"

            def read_file(self, filepath: str):
                # deduplicate=False: trafilatura's process-wide cache would make output depend on task order;
                # duplicates are removed by the MinHash stage instead
                extractor = Trafilatura(favour_precision=True, deduplicate=False, timeout=30)
                for document in super().read_file(filepath):
                    html_length = len(document.text)
                    try:
                        text = extractor.extract(document.text)
                    except Exception as exc:  # trafilatura can fail on broken markup
                        self.reject(filepath, f"record {document.id}", f"HTML extraction failed: {exc}")
                        continue
                    document.text = text or ""
                    document.metadata["html_chars"] = html_length
                    document.metadata["extraction"] = "trafilatura" if text else "empty"
                    yield document

            def get_document_from_dict(self, data: dict, source_file: str, id_in_file: int | str):
                document = super().get_document_from_dict(data, source_file, id_in_file)
                if document is not None and "url" in data:
                    document.metadata.setdefault("url", data["url"])
                return document

        return ExtractingWarcReader(**common)

    class TextReader(_RejectingMixin, BaseDiskReader):
        name = "📄 Text (with rejects)"

        def read_file(self, filepath: str):
            with self.data_folder.open(filepath, "rb") as f:
                raw = f.read()
            try:
                text, encoding = raw.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                text, encoding = raw.decode("cp1252", errors="replace"), "cp1252"
            if text.startswith("\ufeff"):
                text = text[1:]
            parts = [text] if text_mode == "file" else [p for p in text.split("\n\n") if p.strip()]
            for index, part in enumerate(parts):
                document = self.get_document_from_dict(
                    {"text": part, "id": f"{Path(filepath).name}" + (f"#{index}" if text_mode != "file" else "")},
                    filepath, index)
                if document is not None:
                    document.metadata["encoding"] = encoding
                    yield document

    return TextReader(**{**common, "text_key": "text", "id_key": "id"})
