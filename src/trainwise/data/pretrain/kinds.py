"""Document kinds (book, paper, encyclopedia, code, news, forum, web) and source preference scores.

The kind comes from metadata when a source states it (a ``kind`` field, RedPajama's ``meta.source`` /
``redpajama_set_name``, The Pile's ``pile_set_name``, or the URL's domain) and from the text otherwise
(LaTeX and research vocabulary for papers, chapter structure and length for books, code syntax,
question/answer markers for forums, datelines for news).

Preference weights are epochs per source from SCIENCE.md §5: The Pile (Gao et al. 2020, Table 1)
Wikipedia 3.0, PG-19 books 2.5, arXiv/PubMed/StackExchange 2.0, Pile-CC 1.0, GitHub 1.0; LLaMA-1
(Touvron et al. 2023, Table 1) Wikipedia 2.45, Books 2.23, arXiv 1.06, StackExchange 1.03, GitHub 0.64,
CommonCrawl 1.10. The default ``"trainwise"`` preset puts books and papers first (book 2.5 = PG-19,
paper 2.5, encyclopedia/forum 2.0, news 1.5, web and code 1.0); ``"pile"`` and ``"llama"`` reproduce
the published numbers. The document score is the classifier-confidence-weighted preference

    preference_score = c · w[kind] + (1 − c) · w["web"],   c ∈ [0, 1] the kind confidence.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlparse

__all__ = [
    "KINDS",
    "PREFERENCE_PRESETS",
    "KindResult",
    "classify_kind",
    "preference_weights",
    "preference_score",
]

KINDS: tuple[str, ...] = ("book", "paper", "encyclopedia", "code", "news", "forum", "web")

PREFERENCE_PRESETS: dict[str, dict[str, float]] = {
    # The Pile, epochs per source (Gao et al. 2020, arXiv:2101.00027, Table 1)
    "pile": {"encyclopedia": 3.0, "book": 2.5, "paper": 2.0, "forum": 2.0, "code": 1.0, "news": 1.0, "web": 1.0},
    # LLaMA-1 epochs (Touvron et al. 2023, arXiv:2302.13971, Table 1)
    "llama": {"encyclopedia": 2.45, "book": 2.23, "paper": 1.06, "forum": 1.03, "code": 0.64, "news": 1.10, "web": 1.10},
    # books and papers first; the rest as The Pile (news, absent from both, between forum and web)
    "trainwise": {"book": 2.5, "paper": 2.5, "encyclopedia": 2.0, "forum": 2.0, "news": 1.5, "web": 1.0, "code": 1.0},
}


@dataclass(frozen=True)
class KindResult:
    """A document's kind, the confidence ``c`` in [0, 1] and what decided it (``"metadata:..."`` or ``"text"``)."""

    kind: str
    confidence: float
    evidence: str


# --- metadata --------------------------------------------------------------------------------------
_SOURCE_NAMES: dict[str, str] = {
    # RedPajama set names / Pile set names / Dolma sources, lower-cased
    "arxiv": "paper", "pubmed central": "paper", "pubmed abstracts": "paper", "pubmed": "paper",
    "nih exporter": "paper", "nih": "paper", "philpapers": "paper", "uspto backgrounds": "paper", "uspto": "paper",
    "s2orc": "paper", "pes2o": "paper", "peS2o": "paper",
    "book": "book", "books": "book", "books3": "book", "pg-19": "book", "pg19": "book", "gutenberg": "book",
    "bookcorpus2": "book",
    "wikipedia": "encyclopedia", "wikipedia (en)": "encyclopedia", "wiki": "encyclopedia",
    "github": "code", "code": "code", "the stack": "code",
    "stackexchange": "forum", "stack exchange": "forum", "hackernews": "forum", "reddit": "forum",
    "ubuntu irc": "forum",
    "news": "news", "cc-news": "news", "realnews": "news",
    "common-crawl": "web", "commoncrawl": "web", "common_crawl": "web", "c4": "web", "pile-cc": "web",
    "openwebtext2": "web", "refinedweb": "web",
}
_DOMAIN_KINDS: tuple[tuple[str, str], ...] = (
    ("wikipedia.org", "encyclopedia"), ("britannica.com", "encyclopedia"), ("wiktionary.org", "encyclopedia"),
    ("arxiv.org", "paper"), ("ncbi.nlm.nih.gov", "paper"), ("biorxiv.org", "paper"), ("doi.org", "paper"),
    ("sciencedirect.com", "paper"), ("springer.com", "paper"), ("nature.com", "paper"), ("plos.org", "paper"),
    ("gutenberg.org", "book"), ("archive.org", "book"),
    ("github.com", "code"), ("gitlab.com", "code"),
    ("stackexchange.com", "forum"), ("stackoverflow.com", "forum"), ("reddit.com", "forum"),
    ("news.ycombinator.com", "forum"), ("quora.com", "forum"),
    ("reuters.com", "news"), ("bbc.co.uk", "news"), ("bbc.com", "news"), ("nytimes.com", "news"),
    ("theguardian.com", "news"), ("apnews.com", "news"), ("cnn.com", "news"), ("washingtonpost.com", "news"),
)


def _parse_meta(value: Any) -> Mapping[str, Any]:
    """RedPajama stores ``meta`` as a dict or as its Python ``repr``; return a mapping (empty if neither)."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str) and value.startswith("{"):
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return {}
        return parsed if isinstance(parsed, Mapping) else {}
    return {}


def _kind_from_metadata(metadata: Mapping[str, Any]) -> KindResult | None:
    explicit = metadata.get("kind")
    if explicit:
        if explicit not in KINDS:
            raise ValueError(f"unknown document kind {explicit!r}; expected one of {KINDS}")
        return KindResult(str(explicit), 1.0, "metadata:kind")
    nested = {**_parse_meta(metadata.get("meta")), **_parse_meta(metadata.get("metadata"))}
    for key in ("pile_set_name", "redpajama_set_name", "set_name", "source", "dataset"):
        for where in (nested, metadata):
            name = where.get(key)
            if isinstance(name, str) and name.strip().lower() in _SOURCE_NAMES:
                kind = _SOURCE_NAMES[name.strip().lower()]
                # "common-crawl"-like sources say where it came from, not what it is: low confidence
                return KindResult(kind, 0.6 if kind == "web" else 1.0, f"metadata:{key}={name}")
    if "arxiv_id" in nested or "arxiv_id" in metadata:
        return KindResult("paper", 1.0, "metadata:arxiv_id")
    for key in ("url", "id"):
        url = nested.get(key) or metadata.get(key)
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            host = (urlparse(url).hostname or "").lower()
            for domain, kind in _DOMAIN_KINDS:
                if host == domain or host.endswith("." + domain):
                    return KindResult(kind, 0.9, f"metadata:{key} domain {host}")
    return None


# --- text ------------------------------------------------------------------------------------------
_LATEX = re.compile(r"\\(?:begin|end|section|subsection|cite|ref|label|frac|mathbf|mathcal|emph|textbf|item)\b|\$[^$\n]{1,80}\$")
_RESEARCH = re.compile(
    r"\b(?:we propose|we show|in this (?:paper|work|study|project)|results? (?:show|suggest|indicate)|"
    r"hypothes[ie]s|specific aims?|aims? (?:of|to)|investigat\w+|experiment\w*|et al\.|theorem|lemma|"
    r"proof|methodology|clinical|patients|participants|significan\w+|abstract|preliminary data|"
    r"the proposed|this project|(?:this|the present|the current|the proposed) study|examine[sd]?|aims?)\b",
    re.IGNORECASE,
)
_CHAPTER = re.compile(r"^\s*(?:CHAPTER|Chapter|BOOK|Book|PART|Part)\s+(?:[IVXLC]+|\d+|[A-Z][a-z]+)\b", re.MULTILINE)
_CODE_LINE = re.compile(
    r"^\s*(?:def |class |import |from \S+ import |#include|public |private |function |var |let |const |"
    r"return\b|if \(|for \(|while \(|\}|\{|<\?php|#!/)|[;{]\s*$"
)
_FORUM = re.compile(
    r"^\s*(?:Q:|A:|Question:|Answer:|Re:|>\s)|\b(?:answered|asked|upvote|downvote|accepted answer|"
    r"posted by|reply|thread|votes?)\b",
    re.IGNORECASE | re.MULTILINE,
)
_NEWS = re.compile(
    r"^[A-Z][A-Z .,]{2,40}(?:\([A-Za-z ]+\))?\s+[-—–]|\((?:Reuters|AP|AFP)\)|\b(?:said on (?:Monday|Tuesday|"
    r"Wednesday|Thursday|Friday|Saturday|Sunday)|told reporters|according to (?:a |the )?(?:statement|police|"
    r"officials)|press release|spokesman|spokeswoman)\b",
    re.MULTILINE,
)
_ENCYCLOPEDIA = re.compile(r"\b(?:is an? [a-z]+ (?:who|which|that|located|in)|was born|\[\d+\]|See also|References)\b")


def _kind_from_text(text: str) -> KindResult:
    n_words = max(len(text.split()), 1)
    lines = [line for line in text.splitlines() if line.strip()] or [""]
    per_kwords = 1000.0 / n_words
    latex = len(_LATEX.findall(text)) * per_kwords
    research = len(_RESEARCH.findall(text)) * per_kwords
    chapters = len(_CHAPTER.findall(text))
    code_share = sum(bool(_CODE_LINE.search(line)) for line in lines) / len(lines)
    forum = len(_FORUM.findall(text)) * per_kwords
    news = len(_NEWS.findall(text)) * per_kwords
    encyclopedia = len(_ENCYCLOPEDIA.findall(text)) * per_kwords
    prose_share = sum(len(line) for line in lines if len(line) >= 200) / max(1, sum(len(line) for line in lines))

    scores = {
        # research vocabulary alone is not enough (a researcher's homepage has it): without LaTeX, the text
        # must also be prose, most characters in lines of >= 200 characters, as abstracts and papers are
        "paper": min(1.0, latex / 10.0) + min(1.0, research / 8.0) if latex >= 3 or prose_share >= 0.6 else 0.0,
        "book": (min(1.0, chapters / 5.0) + min(1.0, n_words / 50_000)) if chapters >= 3 else 0.0,
        "code": code_share * 2.0 if code_share > 0.3 and latex < 5 else 0.0,
        "forum": min(1.0, forum / 6.0) * 1.2,
        "news": min(1.0, news / 4.0),
        "encyclopedia": min(1.0, encyclopedia / 6.0) * 0.8,
    }
    kind, score = max(scores.items(), key=lambda kv: kv[1])
    if score < 0.5:
        return KindResult("web", 0.5, "text")
    return KindResult(kind, round(min(1.0, score / 1.5), 3), "text")


def classify_kind(text: str, metadata: Mapping[str, Any] | None = None) -> KindResult:
    """Kind of a document: from ``metadata`` when it says so (source name, ``kind``, URL), else from ``text``.

    >>> classify_kind("x", {"kind": "book"}).kind
    'book'
    >>> classify_kind(r"\\section{Intro} We propose a theorem \\cite{a} with proof $x^2$.").kind
    'paper'
    """
    found = _kind_from_metadata(metadata or {})
    if found is not None and not (found.kind == "web" and found.confidence < 1.0):
        return found
    from_text = _kind_from_text(text)
    if found is not None and from_text.kind == "web":
        return found  # metadata said "crawl" and the text agrees
    return from_text


def preference_weights(preset: str | Mapping[str, float] = "trainwise", overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """Epoch-style preference weight per kind: a preset name from :data:`PREFERENCE_PRESETS` or a mapping."""
    if isinstance(preset, str):
        if preset not in PREFERENCE_PRESETS:
            raise ValueError(f"unknown preference preset {preset!r}; expected one of {sorted(PREFERENCE_PRESETS)}")
        weights = dict(PREFERENCE_PRESETS[preset])
    else:
        weights = dict(PREFERENCE_PRESETS["trainwise"]) | dict(preset)
    for kind, value in (overrides or {}).items():
        weights[kind] = value
    for kind, value in weights.items():
        if kind not in KINDS:
            raise ValueError(f"unknown document kind {kind!r} in preferences; expected one of {KINDS}")
        if not (isinstance(value, (int, float)) and value >= 0 and value == value):
            raise ValueError(f"preference weight for {kind!r} must be a finite number >= 0, got {value!r}")
    return weights


def preference_score(result: KindResult, weights: Mapping[str, float]) -> float:
    """``c · w[kind] + (1 − c) · w["web"]`` (confidence-weighted epochs-per-source preference)."""
    c = result.confidence
    return c * float(weights[result.kind]) + (1.0 - c) * float(weights["web"])
