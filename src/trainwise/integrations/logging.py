"""Where the integrations send records: JSONL files and TensorBoard.

A record is a flat-ish dict with a ``"kind"`` (``step`` from the monitor, ``batch_decision`` from the
controller; ``docs/formats.md``). :class:`JsonlSink` appends it as one JSON line;
:class:`TensorBoardSink` writes its numeric fields as scalars ``trainwise/<field>`` (nested dicts as
``trainwise/<key>/<field>``) at ``global_step = record["step"]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Iterable, Protocol

from trainwise._io import JsonlSink  # the one JSONL writer; the monitor uses it too
from trainwise._optional import require

__all__ = ["JsonlSink", "RecordSink", "Sinks", "TensorBoardSink", "scalars_of"]


class RecordSink(Protocol):
    def write(self, record: dict) -> None: ...

    def close(self) -> None: ...


def scalars_of(record: dict, prefix: str = "trainwise") -> dict[str, float]:
    """The finite numeric fields of a record (booleans and strings are left out), nested keys joined by '/'."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if key in ("kind", "step"):
            continue
        if isinstance(value, dict):
            out.update(scalars_of(value, f"{prefix}/{key}"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[f"{prefix}/{key}"] = float(value)
    return out


class TensorBoardSink:
    """Scalars to TensorBoard (``torch.utils.tensorboard``; extra ``tensorboard``).

    ``kinds``: which record kinds to write (default: monitor steps and batch decisions).
    """

    def __init__(self, log_dir: str | Path | None = None, writer: Any | None = None,
                 kinds: Iterable[str] = ("step", "batch_decision")):
        if writer is None:
            require("tensorboard", extra="tensorboard", purpose="TensorBoard logging")
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=None if log_dir is None else str(log_dir))
        self.writer = writer
        self.kinds = set(kinds)

    def write(self, record: dict) -> None:
        if record.get("kind") not in self.kinds:
            return
        step = int(record.get("step") or 0)
        prefix = "trainwise" if record["kind"] == "step" else f"trainwise/{record['kind']}"
        for tag, value in scalars_of(record, prefix).items():
            self.writer.add_scalar(tag, value, global_step=step)

    def close(self) -> None:
        self.writer.flush()
        if hasattr(self.writer, "close"):
            self.writer.close()


class Sinks:
    """Fan a record out to several sinks; ``enabled=False`` (non-zero ranks) drops everything."""

    def __init__(self, sinks: Iterable[RecordSink] = (), enabled: bool = True):
        self.sinks = list(sinks)
        self.enabled = enabled

    @classmethod
    def from_options(cls, jsonl: str | Path | None = None, tensorboard: str | Path | bool | None = None,
                     enabled: bool = True) -> "Sinks":
        sinks: list[RecordSink] = []
        if enabled and jsonl:
            sinks.append(JsonlSink(jsonl))
        if enabled and tensorboard:
            sinks.append(TensorBoardSink(None if tensorboard is True else tensorboard))
        return cls(sinks, enabled)

    def write(self, record: Mapping | None) -> None:
        if record is None or not self.enabled or not self.sinks:
            return
        record = dict(record)  # a monitor's PendingRecord is read back here
        for sink in self.sinks:
            sink.write(record)

    def has_content(self) -> bool:
        """Whether a sink's file already holds something (a resumed monitor then writes no second meta line)."""
        return any(callable(getattr(sink, "has_content", None)) and sink.has_content() for sink in self.sinks)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
