"""Exact and near-duplicate detection for prompts: MinHash + LSH banding, verified by exact Jaccard.

Self-contained numpy (no datatrove): prompts are short, so shingles are *character* ``n``-grams
(default 5) of the punctuation-free, lower-cased text; documents use word 5-grams in the
pre-training pipeline.

MinHash (Broder 1997): for a random hash ``h_i`` the probability that ``min h_i(A) = min h_i(B)``
equals the Jaccard similarity ``s = |A ∩ B| / |A ∪ B|``. Here ``h_i(x) = (a_i x + c_i) mod 2⁶⁴ >> 32``
(multiply-shift hashing, ``a_i`` odd) over 32-bit CRCs of the shingles. The signature of
``b·r`` values is cut into ``b`` bands of ``r`` rows; two prompts become a candidate pair when
any band agrees, with probability ``P(s) = 1 − (1 − s^r)^b`` (SCIENCE.md §5). Candidates are
then verified with the exact Jaccard of their shingle sets, so the reported pairs have no false
positives; the defaults ``b=20, r=5`` give ``P(0.8) ≈ 0.9996``, ``P(0.5) ≈ 0.47``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from trainwise.data.sft._text import char_shingles, exact_key, hash_array

__all__ = [
    "candidate_probability",
    "jaccard",
    "MinHasher",
    "NearDuplicates",
    "find_near_duplicates",
    "find_exact_duplicates",
]


def candidate_probability(similarity: float | np.ndarray, bands: int, rows: int) -> float | np.ndarray:
    """``P(s) = 1 − (1 − s^r)^b``: the chance that LSH makes a pair of Jaccard ``s`` a candidate."""
    s = np.asarray(similarity, dtype=float)
    return 1.0 - (1.0 - s**rows) ** bands


def jaccard(a: set, b: set) -> float:
    """``|A ∩ B| / |A ∪ B|`` (0 for two empty sets)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


class MinHasher:
    """``num_perm = bands·rows`` multiply-shift hash functions, seeded."""

    def __init__(self, bands: int = 20, rows: int = 5, seed: int = 0):
        if bands < 1 or rows < 1:
            raise ValueError(f"bands and rows must be >= 1, got bands={bands}, rows={rows}")
        self.bands, self.rows = bands, rows
        rng = np.random.default_rng(seed)
        num_perm = bands * rows
        self.a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)  # odd
        self.c = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)

    def signature(self, shingle_hashes: np.ndarray) -> np.ndarray:
        """``[num_perm]`` uint32 minima of ``h_i`` over the shingles (all-ones for an empty set)."""
        if shingle_hashes.size == 0:
            return np.full(self.a.shape, np.iinfo(np.uint32).max, dtype=np.uint32)
        with np.errstate(over="ignore"):
            hashed = (self.a[:, None] * shingle_hashes[None, :] + self.c[:, None]) >> np.uint64(32)  # [P, S]
        return hashed.min(axis=1).astype(np.uint32)

    def signatures(self, shingle_sets: Sequence[set]) -> np.ndarray:
        return np.stack([self.signature(hash_array(s)) for s in shingle_sets]) if shingle_sets else np.zeros((0, self.a.size), np.uint32)


@dataclass
class NearDuplicates:
    """Verified near-duplicate pairs and the clusters they form (union-find).

    ``pairs`` are ``(i, j, jaccard)`` with ``i < j``; ``clusters`` lists index groups of size ≥ 2,
    each sorted; ``duplicate_of[j] = i`` maps every non-first member to its cluster's first index.
    """

    pairs: list[tuple[int, int, float]] = field(default_factory=list)
    clusters: list[list[int]] = field(default_factory=list)
    duplicate_of: dict[int, int] = field(default_factory=dict)
    candidates: int = 0


def _clusters_from_pairs(n: int, pairs: list[tuple[int, int, float]]) -> tuple[list[list[int]], dict[int, int]]:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j, _ in pairs:
        root_i, root_j = find(i), find(j)
        if root_i != root_j:
            parent[max(root_i, root_j)] = min(root_i, root_j)
    groups: dict[int, list[int]] = defaultdict(list)
    for index in {k for i, j, _ in pairs for k in (i, j)}:
        groups[find(index)].append(index)
    clusters = sorted(sorted(g) for g in groups.values())
    duplicate_of = {member: cluster[0] for cluster in clusters for member in cluster[1:]}
    return clusters, duplicate_of


def find_exact_duplicates(texts: Sequence[str]) -> dict[int, int]:
    """``{j: i}`` for every text equal (after :func:`~trainwise.data.sft._text.exact_key`) to an earlier text ``i``."""
    first: dict[str, int] = {}
    duplicate_of: dict[int, int] = {}
    for index, text in enumerate(texts):
        key = exact_key(text)
        if key in first:
            duplicate_of[index] = first[key]
        else:
            first[key] = index
    return duplicate_of


def find_near_duplicates(
    texts: Sequence[str],
    threshold: float = 0.8,
    ngram: int = 5,
    bands: int = 20,
    rows: int = 5,
    seed: int = 0,
    only_across: Sequence[int] | None = None,
) -> NearDuplicates:
    """Pairs of texts whose character-``ngram`` Jaccard is ``>= threshold``.

    ``only_across``: a group label per text; when given, only pairs from different groups are
    reported (e.g. train vs evaluation). Candidates come from MinHash-LSH and are verified exactly.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    if only_across is not None and len(only_across) != len(texts):
        raise ValueError(f"only_across has {len(only_across)} labels for {len(texts)} texts")
    shingle_sets = [char_shingles(t, ngram) for t in texts]
    hasher = MinHasher(bands, rows, seed)
    signatures = hasher.signatures(shingle_sets)  # [N, b·r]
    candidates: set[tuple[int, int]] = set()
    for band in range(bands):
        buckets: dict[bytes, list[int]] = defaultdict(list)
        block = np.ascontiguousarray(signatures[:, band * rows : (band + 1) * rows])
        for index in range(len(texts)):
            if shingle_sets[index]:
                buckets[block[index].tobytes()].append(index)
        for members in buckets.values():
            if len(members) > 1:
                for x in range(len(members)):
                    for y in range(x + 1, len(members)):
                        candidates.add((members[x], members[y]))
    pairs = []
    for i, j in sorted(candidates):
        if only_across is not None and only_across[i] == only_across[j]:
            continue
        similarity = jaccard(shingle_sets[i], shingle_sets[j])
        if similarity >= threshold:
            pairs.append((i, j, similarity))
    clusters, duplicate_of = _clusters_from_pairs(len(texts), pairs)
    return NearDuplicates(pairs=pairs, clusters=clusters, duplicate_of=duplicate_of, candidates=len(candidates))
