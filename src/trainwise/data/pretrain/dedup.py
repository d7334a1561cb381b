"""Exact and MinHash near-duplicate removal across sources, with every LSH candidate verified.

MinHash LSH (Broder 1997; docs/science.md §7): 5-gram word shingles of the normalised text, ``b = 14`` bands
× ``r = 8`` rows. Two documents with Jaccard similarity ``s`` share a band with probability

    P(candidate | s) = 1 − (1 − s^r)^b,

which is 0.92 at ``s = 0.8`` but still 0.51 at ``s = 0.72`` and 0.30 at ``s = 0.7``: bare LSH removes pairs
well below the threshold. Every candidate pair is therefore checked by its exact Jaccard similarity
``J(A, B) = |A ∩ B| / |A ∪ B|`` of the shingle sets before anything is removed. Exact duplicates
(identical text after whitespace normalisation) are always removed.

The shingles and signatures are datatrove's (``MinhashDedupSignature``: same text normalisation, word
tokenizer and hash), so in-memory results here equal the on-disk pipeline's; the pipeline uses datatrove's
signature and bucket stages and :func:`make_verified_cluster_step` in place of its clustering stage. One
document per cluster is kept: the one a reader would want (explicit preference, then fewer signs of
corruption, then input order; :mod:`trainwise.data.pretrain.keeper`).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from trainwise._optional import require
from trainwise.data.similarity import candidate_probability as _candidate_probability
from trainwise.data.similarity import connected_components, jaccard

__all__ = [
    "MinHashSettings",
    "WhitespaceWordTokenizer",
    "make_signature_step",
    "candidate_probability",
    "exact_text_hash",
    "jaccard",
    "NearDuplicateIndex",
    "make_verified_cluster_step",
    "make_apply_dedup_step",
    "make_exact_hash_step",
]

_SPACES = re.compile(r"\s+")


def exact_text_hash(text: str) -> int:
    """64-bit hash of the whitespace-normalised text (exact duplicates up to spacing)."""
    normalised = _SPACES.sub(" ", text).strip()
    return int.from_bytes(hashlib.blake2b(normalised.encode("utf-8"), digest_size=8).digest(), "little")


def candidate_probability(similarity: float, bands: int = 14, rows: int = 8) -> float:
    """``1 − (1 − s^r)^b`` with this pipeline's default bands and rows (:func:`trainwise.data.similarity.candidate_probability`)."""
    return _candidate_probability(similarity, bands, rows)


@dataclass(frozen=True)
class MinHashSettings:
    """docs/science.md §7 defaults: 5-gram shingles, 14 bands × 8 rows; pairs below ``threshold`` are kept."""

    n_grams: int = 5
    bands: int = 14
    rows: int = 8
    threshold: float = 0.8
    seed: int = 1
    language: str = "en"
    tokenizer: str = "whitespace"

    def __post_init__(self) -> None:
        if self.tokenizer not in ("whitespace", "datatrove"):
            raise ValueError(f"tokenizer must be 'whitespace' or 'datatrove', got {self.tokenizer!r}")
        if self.n_grams < 1 or self.bands < 1 or self.rows < 1:
            raise ValueError(f"n_grams, bands and rows must be >= 1, got {self.n_grams}, {self.bands}, {self.rows}")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold!r}")

    def datatrove_config(self) -> Any:
        require("datatrove", extra="data", purpose="MinHash deduplication")
        from datatrove.pipeline.dedup.minhash import MinhashConfig

        return MinhashConfig(n_grams=self.n_grams, num_buckets=self.bands, hashes_per_bucket=self.rows, seed=self.seed)


class WhitespaceWordTokenizer:
    """Word tokenizer for MinHash shingles of *normalised* text.

    datatrove shingles ``simplify_text(text)`` (lower-cased, punctuation removed, digits → 0, whitespace
    collapsed) and then runs its spaCy word tokenizer on it. On normalised text spaCy only splits a few
    contractions differently from ``str.split`` (< 0.5 % of tokens on ``../shared/data``) but costs ~10 s for
    one 60 KB arXiv paper against ~2 ms; ``MinHashSettings(tokenizer="datatrove")`` restores spaCy.
    """

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()


def make_signature_step(output_folder: str, settings: "MinHashSettings") -> Any:
    """datatrove's ``MinhashDedupSignature`` with :class:`WhitespaceWordTokenizer` unless told otherwise."""
    require("datatrove", extra="data", purpose="MinHash deduplication")
    from datatrove.pipeline.dedup.minhash import MinhashDedupSignature

    step = MinhashDedupSignature(output_folder, config=settings.datatrove_config(), language=settings.language)
    if settings.tokenizer == "whitespace":
        step.word_tokenizer = WhitespaceWordTokenizer()
    return step


class _Shingler:
    """datatrove's MinHash shingles and signatures without its on-disk state."""

    def __init__(self, settings: MinHashSettings):
        require("datatrove", extra="data", purpose="MinHash deduplication")
        from datatrove.pipeline.dedup.minhash import MinhashDedupSignature

        self.settings = settings
        # output_folder is only opened in run(); a placeholder path is never written
        self._signer = MinhashDedupSignature(output_folder="/nonexistent-trainwise-placeholder",
                                             config=settings.datatrove_config(), language=settings.language)
        if settings.tokenizer == "whitespace":
            self._signer.word_tokenizer = WhitespaceWordTokenizer()

    def shingles(self, text: str) -> np.ndarray:
        return self._signer.get_shingles(text)

    def shingle_set(self, text: str) -> frozenset[int]:
        return frozenset(self.shingles(text).ravel().tolist())

    def signature(self, shingles: np.ndarray) -> list[tuple[int, ...]]:
        return [tuple(band) for band in self._signer.get_signature(shingles)]


class NearDuplicateIndex:
    """In-memory MinHash LSH over a list of texts, with exact-Jaccard verification of candidates.

    >>> idx = NearDuplicateIndex()
    >>> idx.add_many(["a b c d e f g h i j k", "a b c d e f g h i j k", "totally different words here now"])
    >>> [(i, j) for i, j, s in idx.verified_pairs()]
    [(0, 1)]
    """

    def __init__(self, settings: MinHashSettings | None = None):
        self.settings = settings or MinHashSettings()
        self._shingler = _Shingler(self.settings)
        self._shingle_sets: list[frozenset[int]] = []
        self._buckets: list[dict[tuple[int, ...], list[int]]] = [defaultdict(list) for _ in range(self.settings.bands)]

    def add(self, text: str) -> int:
        shingles = self._shingler.shingles(text)
        index = len(self._shingle_sets)
        self._shingle_sets.append(frozenset(shingles.ravel().tolist()))
        if shingles.size:
            for band, key in enumerate(self._shingler.signature(shingles)):
                self._buckets[band][key].append(index)
        return index

    def add_many(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.add(text)

    def candidate_pairs(self) -> set[tuple[int, int]]:
        """Pairs ``(i, j)``, ``i < j``, that share at least one band (bare LSH)."""
        pairs: set[tuple[int, int]] = set()
        for buckets in self._buckets:
            for members in buckets.values():
                for a in range(len(members)):
                    for b in range(a + 1, len(members)):
                        pairs.add((members[a], members[b]))
        return pairs

    def similarity(self, i: int, j: int) -> float:
        return jaccard(self._shingle_sets[i], self._shingle_sets[j])

    def verified_pairs(self, threshold: float | None = None) -> list[tuple[int, int, float]]:
        """Candidate pairs whose exact shingle Jaccard is ``>= threshold`` (default: the settings')."""
        threshold = self.settings.threshold if threshold is None else threshold
        out = []
        for i, j in sorted(self.candidate_pairs()):
            similarity = self.similarity(i, j)
            if similarity >= threshold:
                out.append((i, j, similarity))
        return out

    def clusters(self, threshold: float | None = None) -> list[list[int]]:
        """Connected components (size ≥ 2) of the verified pairs."""
        return connected_components(len(self._shingle_sets), self.verified_pairs(threshold))[0]


# --- datatrove pipeline steps ---------------------------------------------------------------------


def make_exact_hash_step(output_folder: str) -> Any:
    """:class:`~trainwise.data.pretrain.steps.ExactHashes` writing ``{rank:05d}.exact`` to ``output_folder``."""
    from trainwise.data.pretrain.steps import ExactHashes

    return ExactHashes(output_folder)


def make_verified_cluster_step(
    dups_folder: str,
    exact_folder: str,
    documents_folder: str,
    output_folder: str,
    settings: MinHashSettings | None = None,
    source_order: list[str] | tuple[str, ...] = (),
) -> Any:
    """:class:`~trainwise.data.pretrain.steps.VerifiedMinhashCluster` (datatrove's clustering stage, with every
    LSH pair verified by exact Jaccard, one keeper per cluster and documented outputs)."""
    from trainwise.data.pretrain.steps import VerifiedMinhashCluster

    return VerifiedMinhashCluster(dups_folder, exact_folder, documents_folder, output_folder, settings, source_order)


def make_apply_dedup_step(removals_folder: str, exclusion_writer: Any = None) -> Any:
    """:class:`~trainwise.data.pretrain.steps.ApplyDedup`: drops what the clustering stage removed."""
    from trainwise.data.pretrain.steps import ApplyDedup

    return ApplyDedup(removals_folder, exclusion_writer)
