"""Set similarity, MinHash-LSH and connected components: the one copy used by pre-training and SFT dedup.

* :func:`jaccard` ``J(A, B) = |A ∩ B| / |A ∪ B|``, with **J(∅, ∅) = 0**: two texts with no
  shingle at all (empty, or only punctuation) carry no evidence of being the same text, so they
  are never reported as near-duplicates of each other (exact-duplicate hashing catches identical
  empty texts separately). Every other pair is unaffected by the convention.
* :class:`MinHasher` (Broder 1997): for a random hash ``h_i`` the probability that
  ``min h_i(A) = min h_i(B)`` equals ``J(A, B)``. Here ``h_i(x) = (a_i x + c_i) mod 2⁶⁴ >> 32``
  (multiply-shift hashing, ``a_i`` odd) over 32-bit shingle hashes.
* :func:`lsh_candidates`: the ``b·r`` signature values cut into ``b`` bands of ``r`` rows; two
  sets become a candidate pair when any band agrees, with probability
  :func:`candidate_probability` ``P(s) = 1 − (1 − s^r)^b``.
* :class:`UnionFind` / :func:`connected_components`: the groups that verified pairs join
  (path halving, union by smaller representative so each group is named by its first member).

The pre-training pipeline's on-disk signatures come from datatrove's ``MinhashDedupSignature``
(they must match its bucket files); everything else (in-memory LSH, verification, grouping) is here.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Hashable, Iterable, Sequence

import numpy as np

__all__ = ["jaccard", "candidate_probability", "MinHasher", "lsh_candidates", "UnionFind", "connected_components"]


def jaccard(a: set | frozenset, b: set | frozenset) -> float:
    """``|A ∩ B| / |A ∪ B|``; ``0.0`` when both sets are empty (see the module docstring).

    >>> jaccard({1, 2, 3}, {2, 3, 4})
    0.5
    >>> jaccard(set(), set())
    0.0
    """
    inter = len(a & b)
    union = len(a) + len(b) - inter
    return inter / union if union else 0.0


def candidate_probability(similarity: float | np.ndarray, bands: int, rows: int) -> float | np.ndarray:
    """``P(s) = 1 − (1 − s^r)^b``: the chance that banded LSH makes a pair of Jaccard ``s`` a candidate.

    >>> round(float(candidate_probability(0.8, bands=20, rows=5)), 4)
    0.9996
    """
    s = np.asarray(similarity, dtype=float)
    if np.any((s < 0) | (s > 1)):
        raise ValueError(f"similarity must be in [0, 1], got {similarity!r}")
    if bands < 1 or rows < 1:
        raise ValueError(f"bands and rows must be >= 1, got bands={bands}, rows={rows}")
    out = 1.0 - (1.0 - s**rows) ** bands
    return float(out) if out.ndim == 0 else out


class MinHasher:
    """``num_perm = bands·rows`` seeded multiply-shift hash functions over uint64 shingle hashes."""

    def __init__(self, bands: int = 20, rows: int = 5, seed: int = 0):
        if bands < 1 or rows < 1:
            raise ValueError(f"bands and rows must be >= 1, got bands={bands}, rows={rows}")
        self.bands, self.rows = int(bands), int(rows)
        rng = np.random.default_rng(seed)
        num_perm = self.bands * self.rows
        self.a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)  # odd
        self.c = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)

    def signature(self, shingle_hashes: np.ndarray) -> np.ndarray:
        """``[num_perm]`` uint32 minima of ``h_i`` over the shingles (all ones for an empty set)."""
        shingle_hashes = np.asarray(shingle_hashes, dtype=np.uint64)
        if shingle_hashes.size == 0:
            return np.full(self.a.shape, np.iinfo(np.uint32).max, dtype=np.uint32)
        with np.errstate(over="ignore"):
            hashed = (self.a[:, None] * shingle_hashes[None, :] + self.c[:, None]) >> np.uint64(32)  # [P, S]
        return hashed.min(axis=1).astype(np.uint32)

    def signatures(self, hashed_sets: Sequence[np.ndarray]) -> np.ndarray:
        """``[N, num_perm]`` signatures of ``N`` arrays of shingle hashes."""
        if not len(hashed_sets):
            return np.zeros((0, self.a.size), np.uint32)
        return np.stack([self.signature(h) for h in hashed_sets])


def lsh_candidates(signatures: np.ndarray, bands: int, rows: int, skip: Sequence[bool] | None = None) -> set[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j``, whose signatures ``[N, b·r]`` agree on all ``r`` rows of some band.

    ``skip[i]`` leaves row ``i`` out (e.g. an empty shingle set, whose all-ones signature would
    collide with every other empty set).
    """
    signatures = np.asarray(signatures)
    if signatures.ndim != 2 or signatures.shape[1] < bands * rows:
        raise ValueError(f"signatures must be [N, >= {bands * rows}], got {signatures.shape}")
    candidates: set[tuple[int, int]] = set()
    rows_in = [i for i in range(signatures.shape[0]) if skip is None or not skip[i]]
    for band in range(bands):
        buckets: dict[bytes, list[int]] = defaultdict(list)
        block = np.ascontiguousarray(signatures[:, band * rows : (band + 1) * rows])
        for index in rows_in:
            buckets[block[index].tobytes()].append(index)
        for members in buckets.values():
            for x in range(len(members)):
                for y in range(x + 1, len(members)):
                    candidates.add((members[x], members[y]))
    return candidates


class UnionFind:
    """Disjoint sets over any hashable, orderable items; each set is represented by its smallest member.

    >>> uf = UnionFind(); _ = uf.union(3, 1); _ = uf.union(1, 2); uf.find(2)
    1
    """

    def __init__(self, items: Iterable[Hashable] = ()):
        self.parent: dict = {}
        for item in items:
            self.parent.setdefault(item, item)

    def add(self, item: Hashable) -> None:
        self.parent.setdefault(item, item)

    def find(self, item: Hashable) -> Hashable:
        parent = self.parent
        parent.setdefault(item, item)
        while parent[item] != item:
            parent[item] = parent[parent[item]]  # path halving
            item = parent[item]
        return item

    def union(self, a: Hashable, b: Hashable) -> Hashable:
        root_a, root_b = self.find(a), self.find(b)
        if root_a == root_b:
            return root_a
        low, high = (root_a, root_b) if root_a < root_b else (root_b, root_a)  # type: ignore[operator]
        self.parent[high] = low
        return low

    def groups(self, min_size: int = 1) -> list[list]:
        """Every set with at least ``min_size`` members, each sorted, sorted by first member."""
        members: dict = defaultdict(list)
        for item in list(self.parent):
            members[self.find(item)].append(item)
        return sorted((sorted(g) for g in members.values() if len(g) >= min_size), key=lambda g: g[0])


def connected_components(n: int, pairs: Iterable[Sequence]) -> tuple[list[list[int]], dict[int, int]]:
    """Groups (size ≥ 2) of ``range(n)`` joined by ``pairs`` ``(i, j, ...)``, and ``{member: first}``.

    ``duplicate_of[j] = i`` maps every non-first member of a group to the group's smallest index.

    >>> connected_components(5, [(0, 3), (3, 4)])
    ([[0, 3, 4]], {3: 0, 4: 0})
    """
    uf = UnionFind()
    for pair in pairs:
        i, j = int(pair[0]), int(pair[1])
        if not (0 <= i < n and 0 <= j < n):
            raise ValueError(f"pair {(i, j)!r} is outside range({n})")
        uf.union(i, j)
    clusters = uf.groups(min_size=2)
    duplicate_of = {member: cluster[0] for cluster in clusters for member in cluster[1:]}
    return clusters, duplicate_of
