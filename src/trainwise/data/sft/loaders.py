"""Loaders for the common instruction-tuning formats, one JSON object per line (JSONL).

Recognised record shapes (the first that matches wins):

==========================  ===============================================================
``messages``                chat: ``[{"role": "system"|"user"|"assistant", "content": str}, ...]``;
                            the last assistant turn is the response, the turns before it the prompt;
                            OpenAI content-part lists (text parts joined, others as ``[image_url]``),
                            ``tool_calls`` rendered as JSON; tool/function/observation turns stay in
                            the prompt as role ``tool``; trailing turns after the last answer are
                            listed in :attr:`LoadReport.notes`, never dropped silently
``conversations``           ShareGPT: ``[{"from": "human"|"gpt"|"function_call"|"observation"|..., "value": str}, ...]``
``instruction``/``response``  Dolly-15k (``context`` appended to the prompt, ``category`` kept in the record)
``instruction``/``output``  Alpaca: prompt = instruction, plus ``input`` after a blank line when present
``prompt``/``response``     also ``prompt``/``completion`` and ``prompt``/``chosen``
``question``/``answer``     GSM8K-style
==========================  ===============================================================

Files ending in ``.gz`` are read through gzip. Every example remembers where it came from (``source`` = ``file:line``). A malformed line raises
:class:`SFTFormatError` naming the file, the line and the problem; with ``on_error="skip"`` it is
skipped and recorded in the returned :class:`LoadReport` instead, so nothing disappears silently.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

__all__ = [
    "SFTExample",
    "SFTFormatError",
    "LoadReport",
    "BadLine",
    "load_jsonl",
    "load_many",
    "parse_record",
    "instruction_text",
    "FORMATS",
]

FORMATS = ("messages", "conversations", "instruction", "dolly", "prompt", "question")

_USER_ROLES = {"user", "human", "system", "prompter"}
_ASSISTANT_ROLES = {"assistant", "gpt", "bot", "model", "chatbot", "function_call"}
#: tool results: part of the prompt, rendered under the role "tool"
_TOOL_ROLES = {"tool", "function", "observation", "ipython"}


class SFTFormatError(ValueError):
    """A record that is not one of the supported formats; the message names file and line."""

    def __init__(self, path: str, line: int, problem: str):
        self.path, self.line, self.problem = path, line, problem
        super().__init__(f"{path}:{line}: {problem}")


@dataclass
class SFTExample:
    """One prompt/response pair, with its task name and origin.

    ``prompt`` is the full model input (template included); :func:`instruction_text` strips common
    templates for deduplication and diversity. ``messages`` keeps the chat turns when the record was
    a chat; ``record`` is the original JSON object, written back unchanged by the CLI.
    """

    prompt: str
    response: str
    task: str = "default"
    source: str = ""
    format: str = "prompt"
    messages: list[dict[str, str]] | None = None
    record: dict[str, Any] = field(default_factory=dict, repr=False)
    meta: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def instruction(self) -> str:
        """The request without template or role labels (chat: the user turns' contents)."""
        if self.messages:
            user = [turn["content"] for turn in self.messages[:-1] if turn["role"] == "user"]
            if user:
                return "\n".join(user).strip()
        return instruction_text(self.prompt)


@dataclass
class BadLine:
    path: str
    line: int
    problem: str

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "problem": self.problem}


@dataclass
class LoadReport:
    """What a load read: examples per file and format, and every skipped line with its reason."""

    examples: int = 0
    per_file: dict[str, int] = field(default_factory=dict)
    per_format: dict[str, int] = field(default_factory=dict)
    skipped: list[BadLine] = field(default_factory=list)
    #: lines read with a caveat (e.g. trailing chat turns not used), ``file:line: note``
    notes: list[BadLine] = field(default_factory=list)

    def merge(self, other: "LoadReport") -> None:
        self.examples += other.examples
        for key, value in other.per_file.items():
            self.per_file[key] = self.per_file.get(key, 0) + value
        for key, value in other.per_format.items():
            self.per_format[key] = self.per_format.get(key, 0) + value
        self.skipped.extend(other.skipped)
        self.notes.extend(other.notes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "per_file": dict(self.per_file),
            "per_format": dict(self.per_format),
            "skipped": [bad.as_dict() for bad in self.skipped],
            "notes": [note.as_dict() for note in self.notes],
        }


# Templates whose fixed text would make every prompt look alike to a near-duplicate detector.
_ALPACA = re.compile(r"###\s*Instruction:\s*\n(?P<body>.*?)(?:\n\s*###\s*(?:Input|Response):|\Z)", re.S)
_ALPACA_INPUT = re.compile(r"###\s*Input:\s*\n(?P<body>.*?)(?:\n\s*###\s*Response:|\Z)", re.S)
_HUMAN = re.compile(r"(?:^|\n)\s*(?:Human|User):\s*(?P<body>.*?)(?=\n\s*(?:Assistant|AI):|\Z)", re.S)


def instruction_text(prompt: str) -> str:
    """The user's request inside a templated prompt (Alpaca ``### Instruction:``, ``Human:`` turns).

    Returns ``prompt`` stripped when no known template is found.
    """
    match = _ALPACA.search(prompt)
    if match:
        body = match.group("body").strip()
        extra = _ALPACA_INPUT.search(prompt)
        return f"{body}\n{extra.group('body').strip()}" if extra else body
    turns = [m.group("body").strip() for m in _HUMAN.finditer(prompt)]
    if turns:
        return "\n".join(turns)
    return prompt.strip()


def _text_field(record: dict, key: str, where: tuple[str, int]) -> str:
    value = record[key]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SFTFormatError(*where, f"field {key!r} must be a string, got {type(value).__name__} {str(value)[:60]!r}")
    return value


def _render_turns(turns: list[dict[str, str]]) -> str:
    return "\n".join(f"{turn['role']}: {turn['content']}" for turn in turns)


def _parse_chat(record: dict, key: str, where: tuple[str, int],
                trailing_notes: list[str] | None = None) -> tuple[str, str, list[dict[str, str]]]:
    turns_raw = record[key]
    if not isinstance(turns_raw, list) or not turns_raw:
        raise SFTFormatError(*where, f"field {key!r} must be a non-empty list of turns, got {str(turns_raw)[:60]!r}")
    role_key, content_key = ("role", "content") if key == "messages" else ("from", "value")
    turns: list[dict[str, str]] = []
    for number, turn in enumerate(turns_raw):
        if not isinstance(turn, dict) or role_key not in turn or content_key not in turn:
            raise SFTFormatError(*where, f"turn {number} of {key!r} needs {role_key!r} and {content_key!r}, got {str(turn)[:80]!r}")
        role = str(turn[role_key]).lower()
        content = _content_text(turn, content_key, number, where)
        if role not in _USER_ROLES | _ASSISTANT_ROLES | _TOOL_ROLES:
            allowed = ", ".join(sorted(_USER_ROLES | _ASSISTANT_ROLES | _TOOL_ROLES))
            raise SFTFormatError(*where, f"field {key!r}, turn {number}: unknown role {role!r}; allowed: {allowed}")
        kind = ("assistant" if role in _ASSISTANT_ROLES else "tool" if role in _TOOL_ROLES
                else "system" if role == "system" else "user")
        turns.append({"role": kind, "content": content})
    last_assistant = max((i for i, t in enumerate(turns) if t["role"] == "assistant"), default=None)
    if last_assistant is None:
        raise SFTFormatError(*where, f"{key!r} has no assistant turn to use as the response")
    if last_assistant == 0:
        raise SFTFormatError(*where, f"{key!r} starts with the assistant turn: there is no prompt")
    prompt_turns = turns[:last_assistant]
    trailing = turns[last_assistant + 1 :]
    if trailing and trailing_notes is not None:
        trailing_notes.append(f"{len(trailing)} trailing turn(s) after the last assistant turn not used "
                              f"({', '.join(t['role'] for t in trailing)}): they have no answer to train on")
    return _render_turns(prompt_turns), turns[last_assistant]["content"], turns[: last_assistant + 1]


def _content_text(turn: dict, content_key: str, number: int, where: tuple[str, int]) -> str:
    """A turn's text: a string, OpenAI content parts (text parts joined, others named), or a tool call."""
    content = turn[content_key]
    if content is None and turn.get("tool_calls"):
        content = None
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        pieces = []
        for part in content:
            if isinstance(part, str):
                pieces.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                pieces.append(part["text"])
            elif isinstance(part, dict) and "type" in part:
                pieces.append(f"[{part['type']}]")
            else:
                raise SFTFormatError(*where, f"turn {number} {content_key!r}: content part {str(part)[:60]!r} is not "
                                             "allowed; expected a string or {'type': 'text', 'text': ...}")
        text = "\n".join(pieces)
    elif content is None:
        text = ""
    else:
        raise SFTFormatError(*where, f"turn {number} {content_key!r} must be a string or a list of content parts, "
                                     f"got {type(content).__name__} {str(content)[:60]!r}")
    calls = turn.get("tool_calls") or ([turn["function_call"]] if isinstance(turn.get("function_call"), dict) else [])
    for call in calls:
        function = call.get("function", call) if isinstance(call, dict) else {}
        text += ("\n" if text else "") + json.dumps({"name": function.get("name"), "arguments": function.get("arguments")}, ensure_ascii=False)
    return text


def parse_record(record: Any, path: str = "<record>", line: int = 0, task: str = "default") -> SFTExample:
    """One JSON object -> :class:`SFTExample`; raises :class:`SFTFormatError` naming ``path:line``."""
    where = (path, line)
    if not isinstance(record, dict):
        raise SFTFormatError(*where, f"expected a JSON object, got {type(record).__name__} {str(record)[:60]!r}")
    messages = None
    notes = []
    if "messages" in record or "conversations" in record:
        key = "messages" if "messages" in record else "conversations"
        notes: list[str] = []
        prompt, response, messages = _parse_chat(record, key, where, notes)
        fmt = key
    elif "instruction" in record and "response" in record and "output" not in record:
        # Dolly-15k: instruction / context / response / category; the context goes into the prompt
        prompt = _text_field(record, "instruction", where)
        context = _text_field(record, "context", where) if "context" in record else ""
        if context.strip():
            prompt = f"{prompt}\n\n{context}"
        response, fmt = _text_field(record, "response", where), "dolly"
    elif "instruction" in record:
        if "output" not in record:
            raise SFTFormatError(*where, "an 'instruction' record needs an answer field: 'output' (Alpaca) or 'response' "
                                         f"(Dolly-15k); it has {sorted(record)!r}")
        prompt = _text_field(record, "instruction", where)
        extra = _text_field(record, "input", where) if "input" in record else ""
        if extra.strip():
            prompt = f"{prompt}\n\n{extra}"
        response, fmt = _text_field(record, "output", where), "instruction"
    elif "prompt" in record:
        answer_key = next((k for k in ("response", "completion", "chosen", "output") if k in record), None)
        if answer_key is None:
            raise SFTFormatError(*where, "a 'prompt' record needs a 'response' (or 'completion'/'chosen') field")
        prompt, response, fmt = _text_field(record, "prompt", where), _text_field(record, answer_key, where), "prompt"
    elif "question" in record:
        if "answer" not in record:
            raise SFTFormatError(*where, "a 'question' record needs an 'answer' field")
        prompt, response, fmt = _text_field(record, "question", where), _text_field(record, "answer", where), "question"
    else:
        raise SFTFormatError(
            *where,
            f"unrecognised record with keys {sorted(record)!r}; expected one of: messages, conversations, "
            "instruction/input/output (Alpaca), instruction/context/response (Dolly-15k), prompt/response, question/answer",
        )
    record_task = record.get("task")
    example = SFTExample(
        prompt=prompt,
        response=response,
        task=str(record_task) if isinstance(record_task, str) and task == "default" else task,
        source=f"{path}:{line}",
        format=fmt,
        messages=messages,
        record=record,
    )
    if notes:
        example.meta["notes"] = notes
    return example


def load_jsonl(
    path: str | Path,
    task: str | None = None,
    on_error: Literal["raise", "skip"] = "raise",
    report: LoadReport | None = None,
) -> list[SFTExample]:
    """Read one JSONL file of instruction records.

    ``task`` names the task of every example (default: the file stem, or a record's own ``task``
    field). Blank lines are ignored. ``on_error="raise"`` stops at the first bad line with an
    :class:`SFTFormatError` (``file:line: problem``); ``"skip"`` records it in ``report.skipped``.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {str(path)!r}")
    report = report if report is not None else LoadReport()
    stem = path.name
    for suffix in (".gz", ".jsonl", ".json"):
        stem = stem[: -len(suffix)] if stem.endswith(suffix) and len(stem) > len(suffix) else stem
    task_name = task if task is not None else stem
    examples: list[SFTExample] = []
    opener = gzip.open if path.suffix == ".gz" else open
    # bytes, decoded line by line: a bad byte names its own line (a text stream decodes 8 KB chunks ahead and
    # fails on an earlier line), and with on_error="skip" only that line is skipped
    with opener(path, "rb") as handle:
        line_number = 0
        while True:
            line_number += 1
            try:
                raw = handle.readline()
            except EOFError:
                raise SFTFormatError(str(path), line_number, "the compressed file ends early (truncated .gz?)") from None
            except (gzip.BadGzipFile, zlib.error) as exc:
                raise SFTFormatError(str(path), line_number, f"not a readable gzip file ({exc})") from None
            if not raw:
                break
            if line_number == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a byte-order mark is not a JSON error
                raw = raw[3:]
            try:
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise SFTFormatError(str(path), line_number, f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SFTFormatError(str(path), line_number, f"invalid JSON at column {exc.colno}: {exc.msg}: {line.strip()[:80]!r}") from None
                except RecursionError:
                    raise SFTFormatError(str(path), line_number, "JSON nested too deeply") from None
                example = parse_record(record, str(path), line_number, task="default" if task is None else task)
                if task is None and example.task == "default":
                    example.task = task_name
            except SFTFormatError as exc:
                if on_error == "raise":
                    raise
                report.skipped.append(BadLine(exc.path, exc.line, exc.problem))
                continue
            for note in example.meta.get("notes", ()):
                report.notes.append(BadLine(str(path), line_number, note))
            examples.append(example)
    report.examples += len(examples)
    report.per_file[str(path)] = report.per_file.get(str(path), 0) + len(examples)
    for example in examples:
        report.per_format[example.format] = report.per_format.get(example.format, 0) + 1
    return examples


def load_many(
    specs: Iterable[str | Path | tuple[str, str | Path]],
    on_error: Literal["raise", "skip"] = "raise",
) -> tuple[list[SFTExample], LoadReport]:
    """Load several files; each spec is a path, ``"name=path"`` or ``(name, path)`` naming its task.

    A folder stands for every ``.jsonl``/``.json``/``.jsonl.gz`` file in it (sorted, not recursive), whatever
    format each one is in (:func:`parse_record` recognises them per record): each file is its own task, named
    after the file, unless ``NAME=folder`` puts them all in one.
    """
    report = LoadReport()
    examples: list[SFTExample] = []
    for spec in specs:
        if isinstance(spec, tuple):
            name, path = spec
        else:
            text = str(spec)
            name, path = (text.split("=", 1) if "=" in text and not Path(text).exists() else (None, text))
        if Path(path).is_dir():
            files = sorted(f for f in Path(path).iterdir() if f.is_file() and f.name.endswith(_FOLDER_SUFFIXES))
            if not files:
                raise ValueError(f"folder {str(path)!r} holds no {', '.join(_FOLDER_SUFFIXES)} file")
            for file in files:
                examples.extend(load_jsonl(file, task=name, on_error=on_error, report=report))
            continue
        examples.extend(load_jsonl(path, task=name, on_error=on_error, report=report))
    return examples, report


_FOLDER_SUFFIXES = (".jsonl", ".json", ".jsonl.gz")
