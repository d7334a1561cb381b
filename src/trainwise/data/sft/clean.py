"""Cleaning an instruction set: every dropped example is counted under a reason and kept for the report.

Filters follow datatrove's shape: a filter looks at one example and returns ``(keep, reason)``.
The set-level steps (exact and near-duplicate prompts, decontamination) come after the
per-example filters, so a duplicate of a broken example does not survive because its twin was
dropped first. Order of the reasons: ``empty_prompt``, ``empty_response``,
``refusal``, ``short_answer``, ``truncated_response``, ``prompt_too_short``/``prompt_too_long``,
``response_too_short``/``response_too_long``, ``low_quality``, ``unrelated_answer``,
``exact_duplicate``, ``near_duplicate``, ``contaminated`` (the quality checks are in
:mod:`~trainwise.data.sft.quality`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from trainwise.data.sft.decontam import (DEFAULT_DECONTAM_NGRAM, DEFAULT_DECONTAM_OVERLAP, DEFAULT_GATE_OVERLAP,
                                         DEFAULT_MIN_SIMILARITY, DecontaminationReport, decontaminate)
from trainwise.data.sft.dedup import DEFAULT_NEAR_THRESHOLD, find_exact_duplicates, find_near_duplicates
from trainwise.data.sft.loaders import SFTExample
from trainwise.data.sft.quality import is_refusal, is_short_answer, is_truncated, unrelated_answers

__all__ = ["CleanConfig", "CleanResult", "Dropped", "clean", "is_truncated", "example_filters"]  # is_truncated: re-exported from quality

@dataclass
class CleanConfig:
    """Bounds are in words (whitespace-separated); ``None`` disables a bound."""

    min_prompt_words: int | None = 1
    max_prompt_words: int | None = 4096
    min_response_words: int | None = 1
    max_response_words: int | None = 4096
    drop_truncated: bool = True
    #: the quality floor: refusals, short answers to open-ended requests, unrelated answers
    quality_floor: bool = True
    #: drop examples whose heuristic quality is below this (0 disables)
    min_quality: float = 0.2
    exact_dedup: bool = True
    near_dedup: bool = True
    near_threshold: float = DEFAULT_NEAR_THRESHOLD
    #: ``"word"`` (word sets, default) or ``"char"`` (character n-grams)
    near_unit: str = "word"
    near_ngram: int | None = None
    #: keep apart similar prompts whose differing words are numbers, comparisons or negations
    near_guard: bool = True
    decontam_ngram: int = DEFAULT_DECONTAM_NGRAM
    decontam_min_overlap: float = DEFAULT_DECONTAM_OVERLAP
    decontam_gate_overlap: float = DEFAULT_GATE_OVERLAP
    decontam_min_similarity: float = DEFAULT_MIN_SIMILARITY
    #: the similarity pass of decontamination: ``"tfidf"``, ``"minilm"`` (extra ``[embed]``) or ``"none"``
    decontam_embedding: str = "tfidf"
    #: compare the evaluation texts with the training prompts (``"prompt"``) or prompt + response (``"both"``)
    decontam_fields: str = "prompt"

    def __post_init__(self) -> None:
        for name in ("min_prompt_words", "max_prompt_words", "min_response_words", "max_response_words"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a non-negative integer or None, got {value!r}")
        if not 0.0 <= self.min_quality <= 1.0:
            raise ValueError(f"min_quality must be in [0, 1], got {self.min_quality!r}")
        if self.near_unit not in ("word", "char"):
            raise ValueError(f"near_unit must be 'word' or 'char', got {self.near_unit!r}")
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
    if config.quality_floor:
        def refusal(example: SFTExample) -> tuple[bool, str, str]:
            flag, sign = is_refusal(example.response)
            return (False, "refusal", sign) if flag else (True, "", "")

        def short(example: SFTExample) -> tuple[bool, str, str]:
            flag, sign = is_short_answer(example.instruction, example.response)
            return (False, "short_answer", sign) if flag else (True, "", "")
        filters += [refusal, short]
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
    if config.min_quality > 0:
        from trainwise.data.sft.scores import heuristic_scores

        def quality(example: SFTExample) -> tuple[bool, str, str]:
            score = heuristic_scores(example.instruction, example.response).quality
            return (False, "low_quality", f"quality {score:.2f} < {config.min_quality}") if score < config.min_quality else (True, "", "")
        filters.append(quality)
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

    if config.quality_floor and len(alive) > 1:
        unrelated = unrelated_answers([examples[i].instruction for i in alive], [examples[i].response for i in alive])
        for local, (other, cosine) in sorted(unrelated.items()):
            dropped.append(Dropped(examples[alive[local]], "unrelated_answer",
                                   f"answer fits the prompt of {_short(examples[alive[other]].source)} (cosine {cosine:.2f}) "
                                   "and shares almost nothing with its own", alive[local]))
        alive = [i for k, i in enumerate(alive) if k not in unrelated]

    if config.exact_dedup and alive:
        duplicate_of = find_exact_duplicates([examples[i].instruction for i in alive])
        for local, first in sorted(duplicate_of.items()):
            dropped.append(Dropped(examples[alive[local]], "exact_duplicate", f"same prompt as {_short(examples[alive[first]].source)}", alive[local]))
        alive = [i for k, i in enumerate(alive) if k not in duplicate_of]

    if config.near_dedup and len(alive) > 1:
        near = find_near_duplicates([examples[i].instruction for i in alive], threshold=config.near_threshold,
                                    ngram=config.near_ngram, unit=config.near_unit, guard=config.near_guard)  # type: ignore[arg-type]
        best = {}
        for i, j, similarity in near.pairs:  # each member's highest verified Jaccard within its group
            best[i] = max(best.get(i, 0.0), similarity)
            best[j] = max(best.get(j, 0.0), similarity)
        for local, first in sorted(near.duplicate_of.items()):
            dropped.append(Dropped(examples[alive[local]], "near_duplicate",
                                   f"{config.near_unit} Jaccard {best.get(local, 0.0):.2f} in a group kept as {_short(examples[alive[first]].source)}",
                                   alive[local]))
        alive = [i for k, i in enumerate(alive) if k not in near.duplicate_of]

    decontam_report = None
    if eval_texts is not None and alive:
        texts = [examples[i].instruction if config.decontam_fields == "prompt" else f"{examples[i].instruction}\n{examples[i].response}" for i in alive]
        decontam_report = decontaminate(texts, eval_texts, ngram=config.decontam_ngram, min_overlap=config.decontam_min_overlap,
                                        gate_overlap=config.decontam_gate_overlap, min_similarity=config.decontam_min_similarity,
                                        embedding=config.decontam_embedding)  # type: ignore[arg-type]
        by_train = decontam_report.by_train()
        # re-express the report's train indices as indices into ``examples``
        from trainwise.data.sft.decontam import Collision

        decontam_report.collisions = [Collision(alive[c.train_index], c.eval_index, c.overlap, c.shared_ngrams, c.exact, c.similarity, c.rule)
                                      for c in decontam_report.collisions]
        for local, collisions in sorted(by_train.items()):
            worst = max(collisions, key=lambda c: c.overlap)
            what = "exact match" if worst.exact else f"{worst.overlap:.0%} of its number-masked {config.decontam_ngram}-grams"
            if worst.similarity is not None:
                what += f", {config.decontam_embedding} cosine {worst.similarity:.2f}"
            quoted = eval_texts[worst.eval_index][:80].replace("\n", " ")
            dropped.append(Dropped(examples[alive[local]], "contaminated",
                                   f"eval item {worst.eval_index} {quoted!r} ({what}); {len(collisions)} eval item(s) in all", alive[local]))
        alive = [i for k, i in enumerate(alive) if k not in by_train]

    dropped.sort(key=lambda d: d.index)
    return CleanResult(kept=[examples[i] for i in alive], kept_indices=alive, dropped=dropped, decontamination=decontam_report)
