"""Cleaning an instruction set: every dropped example is counted under a reason and kept for the report.

Filters follow datatrove's shape: a filter looks at one example and returns ``(keep, reason)``.
The set-level steps (exact and near-duplicate prompts, decontamination) come after the
per-example filters, so a duplicate of a broken example does not survive because its twin was
dropped first. Order of the reasons: ``empty_prompt``, ``empty_response``,
``truncated_response``, ``prompt_too_short``/``prompt_too_long``,
``response_too_short``/``response_too_long``, ``exact_duplicate``, ``near_duplicate``,
``contaminated``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from trainwise.data.sft.decontam import DecontaminationReport, decontaminate
from trainwise.data.sft.dedup import find_exact_duplicates, find_near_duplicates
from trainwise.data.sft.loaders import SFTExample

__all__ = ["CleanConfig", "CleanResult", "Dropped", "clean", "is_truncated", "example_filters"]

_TERMINAL = tuple('.!?")]}\'`*>|:;…。！？')
_DANGLING_WORDS = {"and", "or", "the", "a", "an", "of", "to", "with", "for", "in", "on", "but", "because", "is", "are", "that", "which"}


def is_truncated(response: str) -> tuple[bool, str]:
    """Heuristic signs that an answer was cut off, with the sign found.

    * an odd number of code fences (an unclosed ```` ``` ```` block);
    * ends with a connective or article (``and``, ``the``, ``of``, ...) or a comma/hyphen;
    * an unbalanced opening bracket near the end;
    * a trailing ellipsis on a long answer (``...``) or the tokenizer marker ``[truncated]``.

    Short answers without final punctuation (``"18"``, ``"Austin"``) are *not* truncated.
    """
    text = response.rstrip()
    if not text:
        return False, ""
    if text.count("```") % 2 == 1:
        return True, "unclosed code fence"
    if text.lower().endswith(("[truncated]", "<truncated>")):
        return True, "truncation marker"
    if text.endswith((",", "-", "(", "[", "{")) and not text.endswith("--"):
        return True, f"ends with {text[-1]!r}"
    last_word = re.findall(r"\w+", text[-30:].lower())
    if last_word and last_word[-1] in _DANGLING_WORDS and not text.endswith(_TERMINAL):
        return True, f"ends with the word {last_word[-1]!r}"
    if len(text.split()) > 30 and text.endswith("...") and not text.endswith("....."):
        return True, "ends with an ellipsis"
    return False, ""


@dataclass
class CleanConfig:
    """Bounds are in words (whitespace-separated); ``None`` disables a bound."""

    min_prompt_words: int | None = 1
    max_prompt_words: int | None = 4096
    min_response_words: int | None = 1
    max_response_words: int | None = 4096
    drop_truncated: bool = True
    exact_dedup: bool = True
    near_dedup: bool = True
    near_threshold: float = 0.8
    near_ngram: int = 5
    decontam_ngram: int = 8
    decontam_min_overlap: float = 0.5
    #: compare the evaluation texts with the training prompts (``"prompt"``) or prompt + response (``"both"``)
    decontam_fields: str = "prompt"

    def __post_init__(self) -> None:
        for name in ("min_prompt_words", "max_prompt_words", "min_response_words", "max_response_words"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a non-negative integer or None, got {value!r}")
        if self.decontam_fields not in ("prompt", "both"):
            raise ValueError(f"decontam_fields must be 'prompt' or 'both', got {self.decontam_fields!r}")


@dataclass
class Dropped:
    example: SFTExample
    reason: str
    detail: str = ""
    index: int = -1  # position in the input list

    def as_dict(self, max_chars: int = 200) -> dict[str, Any]:
        return {"index": self.index, "source": self.example.source, "task": self.example.task, "reason": self.reason,
                "detail": self.detail, "prompt": self.example.instruction[:max_chars],
                "response": self.example.response[:max_chars]}


@dataclass
class CleanResult:
    kept: list[SFTExample]
    kept_indices: list[int]
    dropped: list[Dropped] = field(default_factory=list)
    decontamination: DecontaminationReport | None = None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for item in self.dropped:
            out[item.reason] = out.get(item.reason, 0) + 1
        return out

    def examples_by_reason(self, per_reason: int = 3) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for item in self.dropped:
            bucket = out.setdefault(item.reason, [])
            if len(bucket) < per_reason:
                bucket.append(item.as_dict())
        return out


def _short(source: str) -> str:
    """``dir/file.jsonl:12`` -> ``file.jsonl:12`` (reports stay readable)."""
    return source.replace("\\", "/").rsplit("/", 1)[-1]


def _word_count(text: str) -> int:
    return len(text.split())


def example_filters(config: CleanConfig) -> list[Callable[[SFTExample], tuple[bool, str, str]]]:
    """The per-example filters of ``config``: each returns ``(keep, reason, detail)``."""
    filters: list[Callable[[SFTExample], tuple[bool, str, str]]] = []

    def empty(example: SFTExample) -> tuple[bool, str, str]:
        if not example.instruction.strip():
            return False, "empty_prompt", ""
        if not example.response.strip():
            return False, "empty_response", ""
        return True, "", ""

    filters.append(empty)
    if config.drop_truncated:
        def truncated(example: SFTExample) -> tuple[bool, str, str]:
            flag, sign = is_truncated(example.response)
            return (False, "truncated_response", sign) if flag else (True, "", "")
        filters.append(truncated)

    def bounds(example: SFTExample) -> tuple[bool, str, str]:
        for part, text in (("prompt", example.instruction), ("response", example.response)):
            count = _word_count(text)
            low, high = getattr(config, f"min_{part}_words"), getattr(config, f"max_{part}_words")
            if low is not None and count < low:
                return False, f"{part}_too_short", f"{count} words < {low}"
            if high is not None and count > high:
                return False, f"{part}_too_long", f"{count} words > {high}"
        return True, "", ""

    filters.append(bounds)
    return filters


def clean(
    examples: Sequence[SFTExample],
    config: CleanConfig | None = None,
    eval_texts: Sequence[str] | None = None,
) -> CleanResult:
    """Per-example filters, then exact and near-duplicate prompts, then decontamination.

    Of a group of duplicates the first (in input order) is kept and the others are dropped with a
    ``detail`` naming the kept example's source. ``eval_texts`` are evaluation items (questions, or
    question + answer) to decontaminate against; collisions name the evaluation item index.
    """
    config = config or CleanConfig()
    dropped: list[Dropped] = []
    alive: list[int] = []
    filters = example_filters(config)
    for index, example in enumerate(examples):
        for check in filters:
            keep, reason, detail = check(example)
            if not keep:
                dropped.append(Dropped(example, reason, detail, index))
                break
        else:
            alive.append(index)

    if config.exact_dedup and alive:
        duplicate_of = find_exact_duplicates([examples[i].instruction for i in alive])
        for local, first in sorted(duplicate_of.items()):
            dropped.append(Dropped(examples[alive[local]], "exact_duplicate", f"same prompt as {_short(examples[alive[first]].source)}", alive[local]))
        alive = [i for k, i in enumerate(alive) if k not in duplicate_of]

    if config.near_dedup and len(alive) > 1:
        near = find_near_duplicates([examples[i].instruction for i in alive], threshold=config.near_threshold, ngram=config.near_ngram)
        best = {}
        for i, j, similarity in near.pairs:  # each member's highest verified Jaccard within its group
            best[i] = max(best.get(i, 0.0), similarity)
            best[j] = max(best.get(j, 0.0), similarity)
        for local, first in sorted(near.duplicate_of.items()):
            dropped.append(Dropped(examples[alive[local]], "near_duplicate",
                                   f"Jaccard {best.get(local, 0.0):.2f} in a group kept as {_short(examples[alive[first]].source)}",
                                   alive[local]))
        alive = [i for k, i in enumerate(alive) if k not in near.duplicate_of]

    decontam_report = None
    if eval_texts is not None and alive:
        texts = [examples[i].instruction if config.decontam_fields == "prompt" else f"{examples[i].instruction}\n{examples[i].response}" for i in alive]
        decontam_report = decontaminate(texts, eval_texts, ngram=config.decontam_ngram, min_overlap=config.decontam_min_overlap)
        by_train = decontam_report.by_train()
        # re-express the report's train indices as indices into ``examples``
        from trainwise.data.sft.decontam import Collision

        decontam_report.collisions = [Collision(alive[c.train_index], c.eval_index, c.overlap, c.shared_ngrams, c.exact) for c in decontam_report.collisions]
        for local, collisions in sorted(by_train.items()):
            worst = max(collisions, key=lambda c: c.overlap)
            what = "exact match" if worst.exact else f"{worst.overlap:.0%} of its {config.decontam_ngram}-grams"
            dropped.append(Dropped(examples[alive[local]], "contaminated",
                                   f"eval item {worst.eval_index} ({what}); {len(collisions)} eval item(s) in all", alive[local]))
        alive = [i for k, i in enumerate(alive) if k not in by_train]

    dropped.sort(key=lambda d: d.index)
    return CleanResult(kept=[examples[i] for i in alive], kept_indices=alive, dropped=dropped, decontamination=decontam_report)
