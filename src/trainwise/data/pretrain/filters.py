"""Kind-aware quality filters: datatrove's Gopher, C4 and FineWeb rules, configured from one place.

Two fixes over datatrove's defaults (measured on ``../shared/data``):

- Gopher's "≥ 80 % of words contain a letter" (Rae et al. 2021, Table A1) is computed over *words*;
  datatrove's word tokenizer returns every punctuation mark as a word, so LaTeX papers, StackExchange
  posts and many NIH abstracts fall below 0.8. We compute the share over tokens that are not pure
  punctuation, which is what the rule means (all other Gopher rules unchanged).
- datatrove's ``C4QualityFilter`` rewrites the documents it keeps (joins lines, drops lines that mention
  JavaScript or lack terminal punctuation). We run it on a copy, keep its document-level decision and
  record the share of lines it would have removed as ``c4_line_drop_frac``; the kept text is unchanged.

Rules depend on the document kind (see :mod:`trainwise.data.pretrain.kinds`): web, news and encyclopedia
pages get the full web rule set; papers, books and forum threads get the Gopher quality rules (without
the 100k-word cap, which would drop every novel) and a relaxed repetition rule; code only the relaxed
repetition and length rules. A paper, book, thread or code file is thus dropped only when it is junk.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, Mapping


__all__ = ["DEFAULT_KIND_RULES", "FilterConfig", "make_kind_aware_filter"]

# rule sets per kind; names refer to FilterConfig fields
DEFAULT_KIND_RULES: dict[str, list[str]] = {
    "web": ["gopher_quality", "gopher_repetition", "c4", "fineweb"],
    "news": ["gopher_quality", "gopher_repetition", "c4", "fineweb"],
    "encyclopedia": ["gopher_quality", "gopher_repetition", "fineweb"],
    "forum": ["gopher_quality_relaxed", "gopher_repetition_relaxed"],
    "paper": ["gopher_quality_relaxed", "gopher_repetition_relaxed"],
    "book": ["gopher_quality_relaxed", "gopher_repetition_relaxed"],
    "code": ["gopher_repetition_relaxed", "min_words"],
}


def _gopher_quality_defaults() -> dict[str, Any]:
    # Rae et al. 2021 / docs/science.md §7 (datatrove defaults)
    return dict(
        min_doc_words=50, max_doc_words=100_000, min_avg_word_length=3, max_avg_word_length=10,
        max_symbol_word_ratio=0.1, max_bullet_lines_ratio=0.9, max_ellipsis_lines_ratio=0.3,
        max_non_alpha_words_ratio=0.8, min_stop_words=2,
    )


def _gopher_quality_relaxed_defaults() -> dict[str, Any]:
    # papers, books, threads: no upper length cap (a novel has > 100k words), LaTeX/code words may be long,
    # '#' appears in code and markdown headings; the stop-word rule is kept as a gibberish check but any
    # language's function words count (see _MULTILINGUAL_STOP_WORDS).
    return dict(
        min_doc_words=50, max_doc_words=None, min_avg_word_length=2, max_avg_word_length=15,
        max_symbol_word_ratio=0.3, max_bullet_lines_ratio=0.9, max_ellipsis_lines_ratio=0.3,
        max_non_alpha_words_ratio=0.6, min_stop_words=2,
    )


def _gopher_repetition_relaxed_defaults() -> dict[str, Any]:
    # LaTeX (\end{equation}), code (closing braces) and chapters (blank separators, "* * *") repeat short
    # lines legitimately: only long-range copy-paste counts as junk here (a text that is more than half
    # repeated paragraphs; one arXiv paper in ../shared/data is stored twice in full, 0.499, and is kept).
    return dict(
        dup_line_frac=None, dup_para_frac=None, dup_line_char_frac=0.5, dup_para_char_frac=0.5,
        top_n_grams=((2, 0.4), (3, 0.35), (4, 0.3)), dup_n_grams=((10, 0.5),),
    )


_WHITESPACE_LINE = re.compile(r"^[^\S\n]+$", re.MULTILINE)

_MULTILINGUAL_STOP_WORDS = [
    "the", "be", "to", "of", "and", "that", "have", "with",  # Gopher's English list
    "de", "la", "que", "el", "en", "los", "del", "las", "un", "una", "por", "con", "para", "es",  # es
    "le", "les", "des", "et", "est", "du",  # fr
    "der", "die", "und", "das", "ist", "nicht",  # de
]


@dataclass
class FilterConfig:
    """Every threshold of every rule, in one place (YAML section ``filters``).

    Keyword dictionaries go straight to datatrove's ``GopherQualityFilter``, ``GopherRepetitionFilter``,
    ``C4QualityFilter`` and ``FineWebQualityFilter``; ``kind_rules`` says which rule sets each kind gets.
    """

    gopher_quality: dict[str, Any] = field(default_factory=_gopher_quality_defaults)
    gopher_quality_relaxed: dict[str, Any] = field(default_factory=_gopher_quality_relaxed_defaults)
    gopher_repetition: dict[str, Any] = field(default_factory=dict)
    gopher_repetition_relaxed: dict[str, Any] = field(default_factory=_gopher_repetition_relaxed_defaults)
    c4: dict[str, Any] = field(default_factory=dict)
    fineweb: dict[str, Any] = field(default_factory=dict)
    min_words: int = 20
    kind_rules: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_KIND_RULES.items()})
    language: str = "en"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "FilterConfig":
        data = dict(data or {})
        config = cls()
        known = set(cls.__dataclass_fields__)
        for key, value in data.items():
            if key not in known:
                raise ValueError(f"unknown filters option {key!r}; expected one of {sorted(known)}")
            if isinstance(getattr(config, key), dict) and key != "kind_rules":
                getattr(config, key).update(value or {})
            elif key == "kind_rules":
                config.kind_rules.update({k: list(v) for k, v in (value or {}).items()})
            else:
                setattr(config, key, value)
        rule_names = {"gopher_quality", "gopher_quality_relaxed", "gopher_repetition", "gopher_repetition_relaxed",
                      "c4", "fineweb", "min_words"}
        for kind, rules in config.kind_rules.items():
            for rule in rules:
                if rule not in rule_names:
                    raise ValueError(f"unknown rule {rule!r} for kind {kind!r}; expected some of {sorted(rule_names)}")
        return config

    def to_dict(self) -> dict[str, Any]:
        return {name: copy.deepcopy(getattr(self, name)) for name in self.__dataclass_fields__}


def make_kind_aware_filter(config: FilterConfig | None = None, exclusion_writer: Any = None) -> Any:
    """Build the datatrove ``BaseFilter`` that applies :class:`FilterConfig`'s rules by document kind.

    Each document needs ``metadata["kind"]`` (set by the annotate step; classified on the fly otherwise).
    A dropped document gets ``metadata["filter_reason"] = "<rule>:<datatrove reason>"`` and is written to
    ``exclusion_writer``; the stats count ``dropped_<rule>:<reason>``, ``kept_kind_<kind>`` and
    ``dropped_kind_<kind>``.
    """
    from trainwise.data.pretrain.filter_steps import KindAwareQualityFilter

    return KindAwareQualityFilter(config, exclusion_writer)
