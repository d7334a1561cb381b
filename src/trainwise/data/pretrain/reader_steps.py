"""The readers of :func:`trainwise.data.pretrain.readers.make_reader` as top-level datatrove steps (needs ``[data]``).

Each wraps a datatrove reader: every malformed line, unreadable file, record without text or failed HTML
extraction is written to ``rejects/<source>_<rank>.jsonl`` with its location; counts go to
``counts/<source>_<rank>.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from trainwise._optional import require

require("datatrove", extra="data", purpose="reading corpora")

from datatrove.io import get_datafolder  # noqa: E402
from datatrove.pipeline.readers import JsonlReader, ParquetReader, WarcReader  # noqa: E402
from datatrove.pipeline.readers.base import BaseDiskReader  # noqa: E402

__all__ = ["RejectingJsonlReader", "RejectingParquetReader", "ExtractingWarcReader", "TextReader"]


class _RejectingMixin:
    """Per-rank reject file and counts; a sharded explicit file list instead of a folder listing."""

    def __init__(self, source: str, files: list[str], work_folder: str, text_mode: str = "file", **reader_kwargs):
        super().__init__(**reader_kwargs)
        self.source, self.relative_files = source, list(files)
        self.work_folder, self.text_mode = work_folder, text_mode

    def _start(self, rank: int) -> None:
        self._work = get_datafolder(self.work_folder)
        self._rank = rank
        self._n_read = 0
        self._n_rejected = 0
        self._rejects = self._work.open(f"rejects/{self.source}_{rank:05d}.jsonl", "wt")

    def reject(self, filepath: str, location: str, error: str, snippet: str = "") -> None:
        self._n_rejected += 1
        self.stat_update("rejected")
        self._rejects.write(json.dumps({"source": self.source, "file": "/" + filepath, "location": location,
                                        "error": error, "snippet": snippet[:200]}) + "\n")

    def _finish(self) -> None:
        self._rejects.close()
        with self._work.open(f"counts/{self.source}_{self._rank:05d}.json", "wt") as f:
            json.dump({"source": self.source, "read": self._n_read, "rejected": self._n_rejected}, f)

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        if data:
            yield from data
        self._start(rank)
        try:
            for filepath in self.relative_files[rank::world_size]:
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
            if original is not None and original != self.source:  # keep the input's own field as provenance
                document.metadata["origin_source"] = original
            document.metadata["source"] = self.source
            document.metadata.setdefault("file_path", "/" + source_file)
            document.metadata.setdefault("record", id_in_file)
        return document


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


class RejectingParquetReader(_RejectingMixin, ParquetReader):
    name = "📒 Parquet (with rejects)"


class ExtractingWarcReader(_RejectingMixin, WarcReader):
    name = "🕷 Warc + trafilatura (with rejects)"

    def read_file(self, filepath: str):
        # deduplicate=False: trafilatura's process-wide cache would make output depend on task order;
        # duplicates are removed by the MinHash stage instead
        from datatrove.pipeline.extractors import Trafilatura

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
        parts = [text] if self.text_mode == "file" else [p for p in text.split("\n\n") if p.strip()]
        for index, part in enumerate(parts):
            document = self.get_document_from_dict(
                {"text": part, "id": f"{Path(filepath).name}" + (f"#{index}" if self.text_mode != "file" else "")},
                filepath, index)
            if document is not None:
                document.metadata["encoding"] = encoding
                yield document
