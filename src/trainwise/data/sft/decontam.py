"""Decontamination: which training examples overlap which evaluation items, surviving rewording.

Two signals, over **number-masked** word tokens (lower-cased, punctuation dropped, every token
with a digit replaced by ``#``, so "48 clips" and "151 clips" are the same words):

* **n-gram overlap** ``o(x, e) = |G(x) ∩ G(e)| / |G(e)|`` with ``G`` the masked word ``n``-grams
  (default ``n = 5``): the fraction of the evaluation item that appears in the training example.
  GPT-3 flagged any shared 13-gram on raw text; raw 8-grams at 50% miss an item whose numbers
  were changed.
* **TF-IDF cosine** ``c(x, e)`` of masked word 1–2-grams (sublinear tf, smoothed idf
  ``ln((1 + N)/(1 + df)) + 1`` over the training and evaluation texts, L2-normalised; the
  definitions of scikit-learn's ``TfidfVectorizer``), or of MiniLM sentence embeddings.

A pair is flagged when ``o ≥ min_overlap`` (default 0.5) with at least ``min(3, |G(e)|)`` shared n-grams, or when ``o ≥ gate_overlap`` (0.15)
**and** ``c ≥ min_similarity`` (0.65), or when the normalised texts are equal. The defaults come
from the measured curves in ``docs/sft-data.md`` (GSM8K test questions rewritten by rule:
numbers changed, light and heavy paraphrases; GSM8K train as the clean side): recall 1.0 /
1.0 / 1.0 / 0.8 for verbatim / numbers / light / heavy, and of 7,473 train questions only the
5 that are the same problem as a test question with numbers or names changed are flagged. The
embedding signal alone (no shared n-gram) is not trusted: templated word problems share
vocabulary without being the same problem. Cosines are computed only for gated pairs, so the
cost stays linear in the number of shared n-grams (an inverted index from n-gram to evaluation items).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Literal, Sequence

from trainwise.data.sft._text import exact_key, stable_hash

__all__ = ["Collision", "DecontaminationReport", "decontaminate", "masked_words", "tfidf_vectors",
           "DEFAULT_DECONTAM_NGRAM", "DEFAULT_DECONTAM_OVERLAP", "DEFAULT_GATE_OVERLAP", "DEFAULT_MIN_SIMILARITY"]

DEFAULT_DECONTAM_NGRAM = 5
DEFAULT_DECONTAM_OVERLAP = 0.5
DEFAULT_GATE_OVERLAP = 0.15
DEFAULT_MIN_SIMILARITY = 0.65

_TOKEN = re.compile(r"\w+", re.UNICODE)
_DIGIT = re.compile(r"\d")


def masked_words(text: str, mask_numbers: bool = True) -> list[str]:
    """Lower-cased ``\\w+`` tokens of the NFKC text; with ``mask_numbers`` any token containing a digit becomes ``#``.

    >>> masked_words("Natalia sold 48 clips, then 24.")
    ['natalia', 'sold', '#', 'clips', 'then', '#']
    """
    tokens = _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())
    return ["#" if mask_numbers and _DIGIT.search(t) else t for t in tokens]


def _grams(tokens: list[str], n: int) -> set[int]:
    if not tokens:
        return set()
    if len(tokens) < n:
        return {stable_hash(tuple(tokens))}
    return {stable_hash(tuple(tokens[i : i + n])) for i in range(len(tokens) - n + 1)}


def _terms(tokens: list[str]) -> list[str]:
    return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]


def tfidf_vectors(token_lists: Sequence[list[str]]) -> list[dict[str, float]]:
    """Sparse unit TF-IDF vectors of word 1–2-grams: ``(1 + ln tf) · (ln((1 + N)/(1 + df)) + 1)``, L2-normalised."""
    term_lists = [_terms(tokens) for tokens in token_lists]
    df: Counter[str] = Counter()
    for terms in term_lists:
        df.update(set(terms))
    n = len(term_lists)
    vectors = []
    for terms in term_lists:
        weights = {t: (1.0 + math.log(tf)) * (math.log((1 + n) / (1 + df[t])) + 1.0) for t, tf in Counter(terms).items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        vectors.append({t: w / norm for t, w in weights.items()})
    return vectors


def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(w * b.get(t, 0.0) for t, w in a.items())


@dataclass(frozen=True)
class Collision:
    """Training example ``train_index`` overlaps evaluation item ``eval_index``.

    ``rule``: ``"exact"``, ``"ngram"`` (overlap alone) or ``"ngram+embedding"`` (gated overlap and cosine).
    """

    train_index: int
    eval_index: int
    overlap: float  # |G(x) ∩ G(e)| / |G(e)| on number-masked n-grams
    shared_ngrams: int
    exact: bool
    similarity: float | None = None  # cosine of the embedding pass, when computed
    rule: str = "ngram"

    def as_dict(self) -> dict:
        return {"train_index": self.train_index, "eval_index": self.eval_index, "overlap": round(self.overlap, 4),
                "shared_ngrams": self.shared_ngrams, "exact": self.exact,
                "similarity": None if self.similarity is None else round(self.similarity, 4), "rule": self.rule}


@dataclass
class DecontaminationReport:
    collisions: list[Collision] = field(default_factory=list)
    ngram: int = DEFAULT_DECONTAM_NGRAM
    min_overlap: float = DEFAULT_DECONTAM_OVERLAP
    gate_overlap: float | None = DEFAULT_GATE_OVERLAP
    min_similarity: float | None = DEFAULT_MIN_SIMILARITY
    embedding: str = "tfidf"

    @property
    def contaminated(self) -> list[int]:
        """Sorted indices of training examples that collide with at least one evaluation item."""
        return sorted({c.train_index for c in self.collisions})

    @property
    def exact(self) -> list[Collision]:
        return [c for c in self.collisions if c.exact]

    def by_train(self) -> dict[int, list[Collision]]:
        grouped: dict[int, list[Collision]] = defaultdict(list)
        for collision in self.collisions:
            grouped[collision.train_index].append(collision)
        return dict(grouped)


def _minilm_cosines(train_texts: Sequence[str], eval_texts: Sequence[str], pairs: list[tuple[int, int]]) -> dict[tuple[int, int], float]:
    from trainwise.data.sft.embed import MiniLMEmbedder

    embedder = MiniLMEmbedder()
    train_ids = sorted({i for i, _ in pairs})
    eval_ids = sorted({j for _, j in pairs})
    T = dict(zip(train_ids, embedder.transform([train_texts[i] for i in train_ids])))
    E = dict(zip(eval_ids, embedder.transform([eval_texts[j] for j in eval_ids])))
    return {(i, j): float(T[i] @ E[j]) for i, j in pairs}


def decontaminate(
    train_texts: Sequence[str],
    eval_texts: Sequence[str],
    ngram: int = DEFAULT_DECONTAM_NGRAM,
    min_overlap: float = DEFAULT_DECONTAM_OVERLAP,
    gate_overlap: float | None = DEFAULT_GATE_OVERLAP,
    min_similarity: float | None = DEFAULT_MIN_SIMILARITY,
    embedding: Literal["tfidf", "minilm", "none"] = "tfidf",
    mask_numbers: bool = True,
) -> DecontaminationReport:
    """Every (train, eval) pair flagged by the rules of the module docstring.

    ``embedding="none"`` (or ``min_similarity=None``) keeps only the n-gram rule and exact matches.
    """
    if ngram < 1:
        raise ValueError(f"ngram must be >= 1, got {ngram!r}")
    if not 0.0 <= min_overlap <= 1.0:
        raise ValueError(f"min_overlap must be in [0, 1], got {min_overlap!r}")
    if embedding not in ("tfidf", "minilm", "none"):
        raise ValueError(f"embedding must be 'tfidf', 'minilm' or 'none', got {embedding!r}")
    use_embedding = embedding != "none" and min_similarity is not None and gate_overlap is not None
    if use_embedding and not (0.0 <= gate_overlap <= min_overlap and -1.0 <= min_similarity <= 1.0):
        raise ValueError(f"need 0 <= gate_overlap <= min_overlap and a similarity in [-1, 1], got "
                         f"gate_overlap={gate_overlap!r}, min_similarity={min_similarity!r}")
    low = gate_overlap if use_embedding else min_overlap
    train_tokens = [masked_words(t, mask_numbers) for t in train_texts]
    eval_tokens = [masked_words(t, mask_numbers) for t in eval_texts]
    exact_keys: dict[str, list[int]] = defaultdict(list)
    index: dict[int, list[int]] = defaultdict(list)
    eval_sizes: list[int] = []
    for eval_index, (text, tokens) in enumerate(zip(eval_texts, eval_tokens)):
        exact_keys[exact_key(text)].append(eval_index)
        grams = _grams(tokens, ngram)
        eval_sizes.append(len(grams))
        for gram in grams:
            index[gram].append(eval_index)
    found: list[tuple[int, int, float, int, bool]] = []  # (train, eval, overlap, shared, exact)
    for train_index, (text, tokens) in enumerate(zip(train_texts, train_tokens)):
        shared: dict[int, int] = defaultdict(int)
        for gram in _grams(tokens, ngram):
            for eval_index in index.get(gram, ()):
                shared[eval_index] += 1
        exact_hits = set(exact_keys.get(exact_key(text), ()))
        for eval_index in sorted(set(shared) | exact_hits):
            count = shared.get(eval_index, 0)
            overlap = count / eval_sizes[eval_index] if eval_sizes[eval_index] else 0.0
            # a short item (few n-grams) must share min(3, all) of them: one stock 5-gram is not a leak
            if eval_index in exact_hits or (count >= min(3, eval_sizes[eval_index]) and overlap >= low):
                found.append((train_index, eval_index, overlap, count, eval_index in exact_hits))
    cosines: dict[tuple[int, int], float] = {}
    if use_embedding and found:
        pairs = [(i, j) for i, j, *_ in found]
        if embedding == "minilm":
            cosines = _minilm_cosines(train_texts, eval_texts, pairs)
        else:
            vectors = tfidf_vectors(list(train_tokens) + list(eval_tokens))
            offset = len(train_tokens)
            cosines = {(i, j): _cosine(vectors[i], vectors[offset + j]) for i, j in pairs}
    collisions: list[Collision] = []
    for i, j, overlap, count, is_exact in found:
        similarity = cosines.get((i, j))
        if is_exact:
            rule = "exact"
        elif overlap >= min_overlap:
            rule = "ngram"
        elif similarity is not None and similarity >= min_similarity:  # type: ignore[operator]
            rule = "ngram+embedding"
        else:
            continue
        collisions.append(Collision(i, j, overlap, count, is_exact, similarity, rule))
    return DecontaminationReport(collisions=collisions, ngram=ngram, min_overlap=min_overlap,
                                 gate_overlap=gate_overlap if use_embedding else None,
                                 min_similarity=min_similarity if use_embedding else None, embedding=embedding if use_embedding else "none")
