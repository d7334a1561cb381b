"""The kind-aware quality filter and its fixed Gopher rule as top-level datatrove steps (needs ``[data]``).

:func:`trainwise.data.pretrain.filters.make_kind_aware_filter` returns :class:`KindAwareQualityFilter`; the
thresholds and rule sets live in :class:`~trainwise.data.pretrain.filters.FilterConfig`.
"""

from __future__ import annotations

import contextlib
from typing import Any

from trainwise._optional import require

require("datatrove", extra="data", purpose="quality filters")

import datatrove.pipeline.filters.fineweb_quality_filter as fineweb_module  # noqa: E402
import datatrove.pipeline.filters.gopher_repetition_filter as repetition_module  # noqa: E402
from datatrove.data import Document  # noqa: E402
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,  # noqa: E402
                                        GopherRepetitionFilter)
from datatrove.pipeline.filters.base_filter import BaseFilter  # noqa: E402
from datatrove.utils.text import PUNCTUATION_SET, split_into_words  # noqa: E402

from trainwise.data.pretrain.filters import _MULTILINGUAL_STOP_WORDS, _WHITESPACE_LINE, FilterConfig  # noqa: E402
from trainwise.data.pretrain.kinds import classify_kind  # noqa: E402

__all__ = ["FixedGopherQualityFilter", "KindAwareQualityFilter"]


_word_split_cache: dict[tuple[int, str], tuple[str, list[str]]] = {}


def _cached_split_into_words(text: str, language: str = "en") -> list[str]:
    key = (id(text), language)
    hit = _word_split_cache.get(key)
    if hit is None or hit[0] is not text:
        hit = _word_split_cache[key] = (text, split_into_words(text, language))
    return hit[1]


@contextlib.contextmanager
def _shared_word_split():
    """Tokenize each document once for all Gopher/FineWeb rules (spaCy dominates their cost).

    datatrove's rules call ``split_into_words`` on the same text one after another; inside this block the
    repetition and FineWeb modules see a memoised version (same results), restored on exit.
    """
    saved = repetition_module.split_into_words, fineweb_module.split_into_words
    repetition_module.split_into_words = fineweb_module.split_into_words = _cached_split_into_words
    try:
        yield
    finally:
        repetition_module.split_into_words, fineweb_module.split_into_words = saved
        _word_split_cache.clear()


class FixedGopherQualityFilter(GopherQualityFilter):
    """datatrove's Gopher quality rules with the letter-share rule over non-punctuation words."""

    name = "🥇 Gopher Quality (letter share over words, not punctuation)"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text = doc.text
        words = _cached_split_into_words(text, self.language)
        non_symbol_words = [w for w in words if any(ch not in PUNCTUATION_SET for ch in w)]
        n_words = len(non_symbol_words)
        if self.min_doc_words and n_words < self.min_doc_words:
            return False, "gopher_short_doc"
        if self.max_doc_words and n_words > self.max_doc_words:
            return False, "gopher_long_doc"
        if n_words == 0:
            return False, "gopher_short_doc"
        mean_word_length = sum(len(w) for w in non_symbol_words) / n_words
        if self.min_avg_word_length and mean_word_length < self.min_avg_word_length:
            return False, "gopher_below_avg_threshold"
        if self.max_avg_word_length and mean_word_length > self.max_avg_word_length:
            return False, "gopher_above_avg_threshold"
        if self.max_symbol_word_ratio and text.count("#") / n_words > self.max_symbol_word_ratio:
            return False, "gopher_too_many_hashes"
        if self.max_symbol_word_ratio and (text.count("...") + text.count("…")) / n_words > self.max_symbol_word_ratio:
            return False, "gopher_too_many_ellipsis"
        lines = text.splitlines() or [""]
        if self.max_bullet_lines_ratio and sum(
            s.lstrip().startswith(("•", "-")) for s in lines
        ) / len(lines) > self.max_bullet_lines_ratio:
            return False, "gopher_too_many_bullets"
        if self.max_ellipsis_lines_ratio and sum(
            s.rstrip().endswith(("...", "…")) for s in lines
        ) / len(lines) > self.max_ellipsis_lines_ratio:
            return False, "gopher_too_many_end_ellipsis"
        # the fix: share of *words* (not punctuation tokens) that contain a letter
        if self.max_non_alpha_words_ratio and sum(
            any(c.isalpha() for c in w) for w in non_symbol_words
        ) / n_words < self.max_non_alpha_words_ratio:
            return False, "gopher_below_alpha_threshold"
        if self.min_stop_words and len(self.stop_words.intersection(w.lower() for w in words)) < self.min_stop_words:
            return False, "gopher_enough_stop_words"
        return True


class KindAwareQualityFilter(BaseFilter):
    """Quality rules chosen by ``metadata['kind']``; kept documents' text is never changed."""

    name = "🧭 trainwise kind-aware quality"

    def __init__(self, config: FilterConfig | None = None, exclusion_writer: Any = None):
        super().__init__(exclusion_writer)
        self.config = config or FilterConfig()
        cfg = self.config
        try:
            self.rules = self._build_rules(cfg)
        except TypeError as exc:  # a misspelt threshold name in the YAML
            raise ValueError(f"filters: {exc}") from exc

    @staticmethod
    def _build_rules(cfg: FilterConfig) -> dict[str, Any]:
        return {
            "gopher_quality": FixedGopherQualityFilter(**cfg.gopher_quality, language=cfg.language),
            "gopher_quality_relaxed": FixedGopherQualityFilter(
                **{"stop_words": _MULTILINGUAL_STOP_WORDS, **cfg.gopher_quality_relaxed}, language=cfg.language
            ),
            "gopher_repetition": GopherRepetitionFilter(**cfg.gopher_repetition, language=cfg.language),
            "gopher_repetition_relaxed": GopherRepetitionFilter(**cfg.gopher_repetition_relaxed, language=cfg.language),
            "c4": C4QualityFilter(**cfg.c4, language=cfg.language),
            "fineweb": FineWebQualityFilter(**cfg.fineweb, language=cfg.language),
        }

    def _apply(self, rule: str, doc: Document) -> tuple[bool, str | None]:
        if rule == "min_words":
            n_words = len(doc.text.split())
            return (True, None) if n_words >= self.config.min_words else (False, "too_few_words")
        step = self.rules[rule]
        probe = doc
        if rule == "c4":  # datatrove's C4 filter edits the text: decide on a copy
            probe = Document(text=doc.text, id=doc.id, metadata=dict(doc.metadata))
        elif rule.startswith("gopher_repetition"):
            # lines holding only whitespace are blank lines, not repeated lines (nor paragraph text)
            probe = Document(text=_WHITESPACE_LINE.sub("", doc.text), id=doc.id, metadata=doc.metadata)
        result = step.filter(probe)
        keep, reason = (result if isinstance(result, tuple) else (bool(result), None))
        if rule == "c4" and keep:
            n_lines = max(1, len(doc.text.splitlines()))
            doc.metadata["c4_line_drop_frac"] = round(1.0 - len(probe.text.splitlines()) / n_lines, 4)
        return keep, reason

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        kind = doc.metadata.get("kind")
        if kind is None:
            kind = classify_kind(doc.text, doc.metadata).kind
            doc.metadata["kind"] = kind
        if not doc.text.strip():
            self.stat_update(f"dropped_kind_{kind}")
            return False, "empty_text"
        with _shared_word_split():
            for rule in self.config.kind_rules.get(kind, self.config.kind_rules["web"]):
                keep, reason = self._apply(rule, doc)
                if not keep:
                    self.stat_update(f"dropped_kind_{kind}")
                    return False, f"{rule}:{reason or 'rejected'}"
        self.stat_update(f"kept_kind_{kind}")
        return True
