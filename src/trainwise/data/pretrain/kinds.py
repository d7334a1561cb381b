"""Document kinds (book, paper, encyclopedia, code, news, forum, web) and source preference scores.

The kind comes from metadata when a record states it (``kind:`` in the config, which readers store as
``metadata["kind"]``; RedPajama's ``meta.source`` / ``redpajama_set_name``; The Pile's ``pile_set_name``;
``arxiv_id``; the URL's domain) and from the text otherwise. The *name* a config gives a source is never
read as a kind. From text, a multinomial logistic regression over explainable features (:func:`kind_features`:
layout cues such as LaTeX commands, code-like lines, speaker labels, quoted replies, datelines and line
lengths; vocabulary cues such as research, patent, reference, news, forum, narrative and shop words; and 256
hashed word buckets) gives ``P(kind | text)``. Measured by grouped 5-fold cross-validation on 540 labelled
documents (``benchmarks/pretrain_kinds.py``): accuracy 0.961, lowest recall 0.905 (web). "encyclopedia"
stands for reference text in general: encyclopedia articles, manuals, technical documentation.

Preference weights are epochs per source from docs/science.md §7: The Pile (Gao et al. 2020, Table 1)
Wikipedia 3.0, PG-19 books 2.5, arXiv/PubMed/StackExchange 2.0, Pile-CC 1.0, GitHub 1.0; LLaMA-1
(Touvron et al. 2023, Table 1) Wikipedia 2.45, Books 2.23, arXiv 1.06, StackExchange 1.03, GitHub 0.64,
CommonCrawl 1.10. The default ``"trainwise"`` preset puts books and papers first (book 2.5 = PG-19,
paper 2.5, encyclopedia/forum 2.0, news 1.5, web and code 1.0); ``"pile"`` and ``"llama"`` reproduce
the published numbers. The document score is the classifier-confidence-weighted preference

    preference_score = c · w[kind] + (1 − c) · w["web"],   c ∈ [0, 1] the kind confidence.
"""

from __future__ import annotations

import ast
import math
import re
import zlib
from collections import Counter
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
    # the top-level "source" is the name a config gave the input (readers move a record's own "source"
    # field to "origin_source"): a name someone typed is not evidence of a kind, only `kind:` is
    top_level = {k: v for k, v in metadata.items() if k != "source"}
    if "origin_source" in metadata:
        top_level["source"] = metadata["origin_source"]
    for key in ("pile_set_name", "redpajama_set_name", "set_name", "source", "dataset"):
        for where in (nested, top_level):
            name = where.get(key)
            if isinstance(name, str) and name.strip().lower() in _SOURCE_NAMES:
                kind = _SOURCE_NAMES[name.strip().lower()]
                # "common-crawl"-like sources say where it came from, not what it is: low confidence
                return KindResult(kind, 0.6 if kind == "web" else 1.0, f"metadata:{key}={name}")
    if "arxiv_id" in nested or "arxiv_id" in top_level:
        return KindResult("paper", 1.0, "metadata:arxiv_id")
    for key in ("url", "id"):
        url = nested.get(key) or top_level.get(key)
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            host = (urlparse(url).hostname or "").lower()
            for domain, kind in _DOMAIN_KINDS:
                if host == domain or host.endswith("." + domain):
                    return KindResult(kind, 0.9, f"metadata:{key} domain {host}")
    return None


# --- text ------------------------------------------------------------------------------------------
# Explainable features of a text, each a rate or a share; a multinomial logistic regression over them
# (weights in :mod:`trainwise.data.pretrain._kind_weights`, fitted by ``benchmarks/pretrain_kinds.py`` on a
# labelled set built from local text) turns them into a kind. Layout cues (LaTeX, code lines, speaker
# labels, quoted replies, datelines, line lengths) and vocabulary cues (research, reference, news, forum,
# narrative, web words) together: a single cue such as "asked" or "def" no longer decides alone.
_TEXT_CHARS = 20_000  # features read the first 20k characters (a chapter, a paper's first sections)
_WORD = re.compile(r"\w+", re.UNICODE)
_LATEX = re.compile(r"\\(?:begin|end|section|subsection|cite|ref|label|frac|mathbf|mathcal|emph|textbf|item|left|right|"
                    r"alpha|beta|gamma|sum|int|mathrm|eqref|textit)\b")
_DOLLAR_MATH = re.compile(r"\$[^$\n]{1,80}\$")
# research, patent and forum vocabulary: single words are counted on the word list (one pass), phrases by a
# regex over the lower-cased text (an alternation of every word, case-insensitive, cost ~5 ms per document)
_RESEARCH_PHRASES = re.compile(
    r"\b(?:we propose|we show|in this (?:paper|work|study|project)|results? (?:show|suggest|indicate)|"
    r"specific aims?|preliminary data|the proposed|this project|(?:this|the present|the current) study)\b")
_RESEARCH_WORDS = frozenset(
    "hypothesis hypotheses theorem lemma proof methodology clinical patients participants abstract examine examines "
    "examined aim aims data analysis analyses model models study studies evidence outcome outcomes effect effects "
    "population populations framework approach mechanism mechanisms respectively furthermore moreover thus hence "
    "wherein whereby".split())
_RESEARCH_PREFIXES = ("investigat", "experiment", "significan", "method", "research", "measure")
_PATENT_PHRASES = re.compile(
    r"\b(?:present invention|invention relates|prior art|field of the invention|according to the invention|"
    r"said \w+ (?:is|being|having))\b")
_PATENT_WORDS = frozenset("embodiment embodiments apparatus disclosed conventional herein".split())
_QA_LINE = re.compile(r"^\s*(?:Q|A|Question|Answer|Pregunta|Respuesta)\s*[:.]\s", re.MULTILINE)
_FORUM_LINE_STARTS = ("Q:", "A:", "Re:", "RE:", "Question:", "Answer:", ">")
_FORUM_WORDS = frozenset(
    "re reply replies replied replying posted post comment comments thread op answer answers answered points forum "
    "topic quote thanks edit update".split())
_FORUM_PREFIXES = ("upvote", "downvote")
_CITATION = re.compile(r"et al\.|\[\d+(?:[,–-]\s*\d+)*\]|\(\w+(?: et al\.)?,? \d{4}\)|\\cite")
_CHAPTER = re.compile(r"^\s*(?:CHAPTER|Chapter|BOOK|Book|PART|Part|ACT|Act|SCENE|Scene)\s+(?:[IVXLC]+|\d+|[A-Z][a-z]+)\b",
                      re.MULTILINE)
_CODE_LINE = re.compile(
    r"^\s*(?:def |class |import |from \S+ import |#\s*(?:include|define|if|ifdef|ifndef|endif|else)\b|public |private |"
    r"static |function |var |let |const |return\b|if\s*\(|for\s*\(|while\s*\(|else\b|elif |try:|except\b|@\w+|"
    r"[}{]|<\?php|#!/|typedef |struct |\w+\s*\([^)]*\)\s*[;{]?$|[\w.\[\]]+\s*[+\-*/|&]?=\s*\S)|[;{}:]\s*$|\)\s*$"
)
_SPEAKER = re.compile(r"^\s*[A-Z][A-Za-z .'_-]{1,30}:\s*$|^\s*[A-Z][A-Z ]{1,25}:\s")
_DATELINE = re.compile(
    r"^[A-Z][A-Z .,'-]{2,40}(?:,\s*[A-Z][a-z]{2,8}\.? \d{1,2})?\s*(?:\((?:[A-Za-z]+|AP|AFP|Reuters)\))?\s*(?:-{1,2}|—|–)\s|"
    r"^By [A-Z][a-z]+ [A-Z][a-z]+(?:\s*\||$)|^Updated \d|\((?:Reuters|AP|AFP)\)",
    re.MULTILINE,
)
_QUOTE_LINE = re.compile(r"^\s*[\"“‘'«]")


def _lexicon(words: str) -> frozenset[str]:
    return frozenset(words.split())


_FIRST_SINGULAR = _lexicon("i my me mine im ive dont cant anyone anybody")
_FIRST_PLURAL_SECOND = _lexicon("we our us ours you your yours")
_THIRD = _lexicon("he she his her him hers himself herself")
_SAID = _lexicon("said says told according announced added confirmed reported")
_NEWS = _lexicon(
    "percent minister ministry police officials official government spokesman spokeswoman spokesperson president "
    "council company million billion reuters ap afp monday tuesday wednesday thursday friday saturday sunday statement "
    "reporters announced authorities court economists shares prices election parliament agency residents")
_REFERENCE = _lexicon(
    "defined definition following syntax example examples returns return default section argument arguments option "
    "options value values parameter parameters must described note see refers called used specified attribute "
    "attributes function functions object objects type types instance method methods file files")
_WEB = _lexicon(
    "click home contact privacy copyright subscribe cookies cart shop price shipping login sign newsletter online free "
    "buy order website blog share read more rights reserved offer best quality services customer customers call "
    "today products product sale deals")
_NARRATIVE = _lexicon(
    "mr mrs miss lady sir thou thee thy replied cried upon madam dear lord thine hath shall ere heart father mother")
_CODE_WORDS = _lexicon(
    "def return self import class elif none true false int void const struct static define include null ifdef endif "
    "typedef char unsigned sizeof args kwargs len isinstance raise lambda yield")
_STOP = _lexicon(
    "the of and to a in that is was he for it with as his on be at by i this had not are but from or have an they which "
    "one you were her all she there would their we him been has when who will more no if out so said what up its about")

_LEXICONS = (("first", _FIRST_SINGULAR), ("plural", _FIRST_PLURAL_SECOND), ("third", _THIRD), ("said", _SAID),
             ("news", _NEWS), ("reference", _REFERENCE), ("web", _WEB), ("narrative", _NARRATIVE),
             ("code", _CODE_WORDS), ("stop", _STOP), ("research", _RESEARCH_WORDS), ("patent", _PATENT_WORDS),
             ("forum", _FORUM_WORDS))
_LEXICON_OF: dict[str, tuple[str, ...]] = {}
for _name, _lexicon in _LEXICONS:
    for _word in _lexicon:
        _LEXICON_OF[_word] = (*_LEXICON_OF.get(_word, ()), _name)
_MONEY_AND_MARKS = re.compile(r"[$£€]\s?\d|©|\s\|\s|®|™")

FEATURE_NAMES: tuple[str, ...] = (
    "latex", "dollar_math", "code_lines", "symbol_chars", "indented_lines", "long_line_chars", "short_lines",
    "words_per_line", "quote_lines", "quote_marks", "chapter_headings", "speaker_lines", "dateline",
    "quoted_reply_lines", "forum_markers", "first_person_singular", "we_and_you", "third_person", "said", "news_words",
    "research_words", "patent_words", "qa_lines", "citations", "reference_words", "web_words", "narrative_words", "code_words",
    "digit_tokens", "money_and_marks", "question_marks", "exclamations", "uppercase_words", "stop_words", "log_words", "mean_word_length",
)
HASH_BUCKETS = 256  # hashed word unigrams: vocabulary beyond the hand-picked lexicons


def _hashed_words(words: list[str], n: int) -> list[float]:
    """``log(1 + 1000 · share of words in bucket h)`` for ``h = crc32(word) mod HASH_BUCKETS``."""
    counts = [0] * HASH_BUCKETS
    for w, k in Counter(words).items():
        counts[zlib.crc32(w.encode("utf-8")) % HASH_BUCKETS] += k
    return [math.log1p(1000.0 * c / n) for c in counts]


def kind_features(text: str) -> list[float]:
    """The classifier's features of ``text`` (first 20k characters), in the order of :data:`FEATURE_NAMES`.

    Rates ``r`` per 1000 words enter as ``log(1 + r)``; shares are in [0, 1].
    """
    text = text[:_TEXT_CHARS]
    raw_words = _WORD.findall(text)
    words = [w.lower() for w in raw_words]
    n = max(len(words), 1)
    per_k = 1000.0 / n
    lines = [line for line in text.splitlines() if line.strip()] or [""]
    n_lines = len(lines)
    n_chars = max(1, sum(len(line) for line in lines))

    def rate(count: float) -> float:
        return math.log1p(count * per_k)

    # one pass over the words for every lexicon
    counts = dict.fromkeys(("first", "plural", "third", "said", "news", "reference", "web", "narrative", "code",
                            "stop", "research", "patent", "forum", "digits"), 0)
    for w, k in Counter(words).items():
        for name in _LEXICON_OF.get(w, ()):
            counts[name] += k
        if w.startswith(_RESEARCH_PREFIXES):
            counts["research"] += k
        elif w.startswith(_FORUM_PREFIXES):
            counts["forum"] += k
        if not w.isalpha() and any(ch.isdigit() for ch in w):
            counts["digits"] += k
    lower = text.lower()
    counts["research"] += len(_RESEARCH_PHRASES.findall(lower))
    counts["patent"] += len(_PATENT_PHRASES.findall(lower))
    counts["forum"] += sum(line.lstrip().startswith(_FORUM_LINE_STARTS) for line in lines)

    symbols = sum(text.count(ch) for ch in "{}[]()<>=;_\\|*#/+&")
    return [
        rate(len(_LATEX.findall(text))),
        rate(len(_DOLLAR_MATH.findall(text))),
        sum(bool(_CODE_LINE.search(line)) for line in lines) / n_lines,
        symbols / max(1, len(text)),
        sum(line.startswith(("  ", "\t")) for line in lines) / n_lines,
        sum(len(line) for line in lines if len(line) >= 200) / n_chars,
        sum(len(line.split()) < 5 and not line.rstrip().endswith((".", "?", "!", ":", '"', "”")) for line in lines) / n_lines,
        math.log1p(n / n_lines),
        sum(bool(_QUOTE_LINE.match(line)) for line in lines) / n_lines,
        rate(sum(text.count(ch) for ch in "\"“”")),
        min(3.0, float(len(_CHAPTER.findall(text)))),
        sum(bool(_SPEAKER.match(line)) for line in lines) / n_lines,
        1.0 if _DATELINE.search(text[:400]) else 0.0,
        sum(line.lstrip().startswith(">") for line in lines) / n_lines,
        rate(counts["forum"]),
        counts["first"] / n,
        counts["plural"] / n,
        counts["third"] / n,
        rate(counts["said"]),
        rate(counts["news"]),
        rate(counts["research"]),
        rate(counts["patent"]),
        min(3.0, float(len(_QA_LINE.findall(text)))),
        rate(len(_CITATION.findall(text))),
        rate(counts["reference"]),
        rate(counts["web"]),
        rate(counts["narrative"]),
        rate(counts["code"]),
        counts["digits"] / n,
        rate(len(_MONEY_AND_MARKS.findall(text))),
        rate(text.count("?")),
        rate(text.count("!")),
        sum(1 for w in raw_words if len(w) >= 2 and w.isupper()) / n,
        counts["stop"] / n,
        math.log1p(len(words)),
        sum(len(w) for w in words) / n,
        *_hashed_words(words, n),
    ]


def _softmax(scores: list[float]) -> list[float]:
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def kind_probabilities(text: str, model: Mapping[str, Any] | None = None) -> dict[str, float]:
    """``P(kind | text)`` of the multinomial logistic regression over :func:`kind_features`.

    ``p_k ∝ exp(b_k + Σ_j w_kj (x_j − μ_j) / σ_j)`` with the standardisation ``μ, σ`` and weights ``w, b``
    of ``model`` (default: the shipped ``_kind_weights.MODEL``).
    """
    if model is None:
        from trainwise.data.pretrain._kind_weights import MODEL as model
    return probabilities_from_features(kind_features(text), model)


def probabilities_from_features(x: list[float], model: Mapping[str, Any]) -> dict[str, float]:
    """:func:`kind_probabilities` for features already computed."""
    z = [(xj - mu) / sd for xj, mu, sd in zip(x, model["mean"], model["std"])]
    scores = [b + sum(w * zj for w, zj in zip(row, z)) for row, b in zip(model["weights"], model["bias"])]
    return dict(zip(model["kinds"], _softmax(scores)))


def _kind_from_text(text: str) -> KindResult:
    probabilities = kind_probabilities(text)
    kind = max(probabilities, key=probabilities.__getitem__)
    return KindResult(kind, round(probabilities[kind], 3), "text")


def fit_kind_model(features: Any, labels: list[str], l2: float = 1e-2, steps: int = 1000,
                   learning_rate: float = 1.0, web_weight: float = 1.0) -> dict[str, Any]:
    """Fit the multinomial logistic regression (full-batch gradient descent, deterministic; numpy).

    Minimises ``mean_i −log p(y_i | x_i) + l2 · |W|²`` on standardised features; classes are weighted
    so that each kind counts equally, whatever its number of examples.
    """
    import numpy as np

    x = np.asarray(features, dtype=np.float64)
    kinds = [k for k in KINDS if k in set(labels)]
    y = np.array([kinds.index(label) for label in labels])
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    n, d = z.shape
    onehot = np.eye(len(kinds))[y]
    per_kind = n / (len(kinds) * np.bincount(y, minlength=len(kinds)))
    if "web" in kinds:
        per_kind[kinds.index("web")] *= web_weight
    class_weight = per_kind[y][:, None]
    w = np.zeros((len(kinds), d))
    b = np.zeros(len(kinds))
    with _one_blas_thread():  # tiny matrices: threads only add overhead (10x on a busy 2-core machine)
        _gradient_descent(z, onehot, class_weight, w, b, l2, steps, learning_rate)
    return {"kinds": kinds, "features": [*FEATURE_NAMES, *(f"word_bucket_{h}" for h in range(HASH_BUCKETS))],
            "mean": mean.round(6).tolist(), "std": std.round(6).tolist(), "weights": w.round(5).tolist(),
            "bias": b.round(5).tolist()}


def _one_blas_thread() -> Any:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1)


def _gradient_descent(z, onehot, class_weight, w, b, l2: float, steps: int, learning_rate: float) -> None:
    import numpy as np

    n = z.shape[0]
    for _ in range(steps):
        logits = z @ w.T + b
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) * class_weight / n
        w -= learning_rate * (g.T @ z + 2 * l2 * w)
        b -= learning_rate * g.sum(0)


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
