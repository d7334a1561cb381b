"""Decontamination: which training examples overlap which evaluation items, by word n-grams.

For a training text ``x`` and an evaluation item ``e`` with word ``n``-gram sets ``G(x)``, ``G(e)``
(lower-cased, punctuation dropped; a text shorter than ``n`` words is one shorter gram), the
*overlap* is ``|G(x) ∩ G(e)| / |G(e)|``: the fraction of the evaluation item that appears in the
training example. GPT-3 (Brown et al. 2020) flagged any shared 13-gram; that is ``min_overlap``
→ 0 here. The default (``n = 8``, ``min_overlap = 0.5``) flags an example when at least half of an
evaluation item's 8-grams occur in it, which catches a copied question with a rewritten answer
and ignores stock phrases. Exact matches of the normalised text are reported separately.

An inverted index from n-gram hash to evaluation items keeps the cost linear in the total number
of n-grams.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

from trainwise.data.sft._text import exact_key, stable_hash, word_ngrams, words

__all__ = ["Collision", "DecontaminationReport", "decontaminate"]


@dataclass(frozen=True)
class Collision:
    """Training example ``train_index`` overlaps evaluation item ``eval_index``."""

    train_index: int
    eval_index: int
    overlap: float  # |G(x) ∩ G(e)| / |G(e)|
    shared_ngrams: int
    exact: bool

    def as_dict(self) -> dict:
        return {"train_index": self.train_index, "eval_index": self.eval_index, "overlap": round(self.overlap, 4),
                "shared_ngrams": self.shared_ngrams, "exact": self.exact}


@dataclass
class DecontaminationReport:
    collisions: list[Collision] = field(default_factory=list)
    ngram: int = 8
    min_overlap: float = 0.5

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


def _gram_hashes(text: str, n: int) -> set[int]:
    return {stable_hash(g) for g in word_ngrams(words(text), n)}


def decontaminate(
    train_texts: Sequence[str],
    eval_texts: Sequence[str],
    ngram: int = 8,
    min_overlap: float = 0.5,
) -> DecontaminationReport:
    """Every (train, eval) pair with ``overlap >= min_overlap`` or an exact normalised match."""
    if ngram < 1:
        raise ValueError(f"ngram must be >= 1, got {ngram!r}")
    if not 0.0 <= min_overlap <= 1.0:
        raise ValueError(f"min_overlap must be in [0, 1], got {min_overlap!r}")
    exact_keys: dict[str, list[int]] = defaultdict(list)
    index: dict[int, list[int]] = defaultdict(list)
    eval_sizes: list[int] = []
    for eval_index, text in enumerate(eval_texts):
        exact_keys[exact_key(text)].append(eval_index)
        grams = _gram_hashes(text, ngram)
        eval_sizes.append(len(grams))
        for gram in grams:
            index[gram].append(eval_index)
    collisions: list[Collision] = []
    for train_index, text in enumerate(train_texts):
        shared: dict[int, int] = defaultdict(int)
        for gram in _gram_hashes(text, ngram):
            for eval_index in index.get(gram, ()):
                shared[eval_index] += 1
        exact_hits = set(exact_keys.get(exact_key(text), ()))
        for eval_index in sorted(set(shared) | exact_hits):
            count = shared.get(eval_index, 0)
            overlap = count / eval_sizes[eval_index] if eval_sizes[eval_index] else 0.0
            is_exact = eval_index in exact_hits
            if is_exact or (count > 0 and overlap >= min_overlap):
                collisions.append(Collision(train_index, eval_index, overlap, count, is_exact))
    return DecontaminationReport(collisions=collisions, ngram=ngram, min_overlap=min_overlap)
