"""Choosing ``k`` examples that cover the pool: k-center greedy, Deita threshold admission, random.

Coverage of a selection ``S`` of a pool ``X`` (rows are unit embedding vectors) is measured by
the distance of every pool point to its nearest selected point::

    d(x, S) = min_{s ∈ S} ‖x − s‖₂          mean coverage distance = (1/N) Σ_x d(x, S)
    radius  = max_x d(x, S)                  (the k-center objective)

*k-center greedy* (farthest-first traversal, Gonzalez 1985; the core-set selection of Sener &
Savarese 2018) adds, ``k`` times, the point farthest from the current selection; its radius is
within a factor 2 of the optimum. *Deita* (Liu et al. 2024, arXiv:2312.15685) walks the pool by
descending score and admits an example only if its largest cosine similarity to those already
admitted is ``<= threshold`` (0.9 in the paper), until ``k`` are admitted.

Farthest-first minimises the *largest* distance, so it favours isolated points (outliers). To
minimise the *mean* distance (the k-median objective), :func:`facility_location_greedy`
maximises the monotone submodular ``F(S) = Σ_x max_{s∈S} (2 − ‖x − s‖)`` (unit vectors are at
most 2 apart), which equals ``N·(2 − mean coverage distance)`` once ``S`` is non-empty: greedy is
within ``1 − 1/e`` of the best ``F`` (Nemhauser, Wolsey & Fisher 1978), evaluated lazily (Minoux
1978). :func:`kmeans_medoids` is a cheaper proxy: k-means on the pool, then per cluster the real
example nearest its centroid.
"""

from __future__ import annotations

import heapq
from typing import Sequence

import numpy as np

__all__ = ["k_center_greedy", "kmeans_medoids", "facility_location_greedy", "deita_select", "random_select", "coverage_distance", "top_k"]


def _check_k(k: int, n: int) -> None:
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > n:
        raise ValueError(f"k={k} is larger than the pool of {n} examples")


def _sq_dist_to(X: np.ndarray, point: np.ndarray) -> np.ndarray:
    diff = X - point[None, :]
    return np.einsum("nd,nd->n", diff, diff)


def k_center_greedy(X: np.ndarray, k: int, start: int | None = None, already: Sequence[int] = ()) -> list[int]:
    """Farthest-first traversal: ``k`` indices (in the order chosen) into the rows of ``X``.

    ``start`` is the first centre (default: the point nearest the mean, so the result is
    deterministic); ``already`` are centres chosen before (e.g. a curated seed set), not returned.
    Cost ``O(N k D)`` time, ``O(N)`` extra memory.
    """
    X = np.asarray(X, dtype=np.float32)
    n = X.shape[0]
    _check_k(k, n - len(already))
    min_sq = np.full(n, np.inf, dtype=np.float32)
    for index in already:
        np.minimum(min_sq, _sq_dist_to(X, X[index]), out=min_sq)
    chosen: list[int] = []
    if not len(already):
        first = int(np.argmin(_sq_dist_to(X, X.mean(axis=0)))) if start is None else int(start)
        chosen.append(first)
        np.minimum(min_sq, _sq_dist_to(X, X[first]), out=min_sq)
    while len(chosen) < k:
        candidate = int(np.argmax(min_sq))
        chosen.append(candidate)
        np.minimum(min_sq, _sq_dist_to(X, X[candidate]), out=min_sq)
    return chosen


def kmeans_medoids(X: np.ndarray, k: int, seed: int = 0, iterations: int = 25) -> list[int]:
    """``k`` examples, one per k-means cluster: the member nearest each centroid (distinct indices).

    Empty clusters (rare with k-means++ seeding) are filled by farthest-first from the medoids.
    """
    from trainwise.data.sft.diversity import kmeans

    X = np.asarray(X, dtype=np.float32)
    _check_k(k, X.shape[0])
    centres, labels = kmeans(X, k, seed=seed, iterations=iterations)
    chosen: list[int] = []
    for c in range(k):
        members = np.flatnonzero(labels == c)
        if len(members):
            chosen.append(int(members[np.argmin(_sq_dist_to(X[members], centres[c]))]))
    if len(chosen) < k:
        chosen += k_center_greedy(X, k - len(chosen), already=chosen)
    return chosen


def _distances_to(X: np.ndarray, index: int, x_sq: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(x_sq - 2.0 * (X @ X[index]) + x_sq[index], 0.0))


def facility_location_greedy(X: np.ndarray, k: int, chunk: int = 2048, weights: Sequence[float] | None = None) -> list[int]:
    """Lazy greedy maximisation of ``F(S) = Σ_x max_{s∈S} q_s (2 − ‖x − s‖)``: ``k`` indices in the order chosen.

    ``weights`` ``q_s ∈ [0, 1]`` (e.g. heuristic quality) scale how well ``s`` serves the points
    it covers, so selection weighs quality and coverage together: a junk answer far from
    everything (``q ≈ 0``) never wins a slot for its isolation. ``None`` is ``q = 1`` (pure coverage).

    Minimises the mean coverage distance directly. Cost: the first gains need all pairwise
    distances (``O(N² D)``, computed in chunks, ``O(N·chunk)`` memory); afterwards each lazy
    re-evaluation is ``O(N D)``.
    """
    X = np.asarray(X, dtype=np.float32)
    n = X.shape[0]
    _check_k(k, n)
    q = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if q.shape != (n,) or np.any(~np.isfinite(q)) or np.any(q < 0):
        raise ValueError(f"weights must be {n} finite values >= 0, got shape {q.shape}")
    x_sq = np.einsum("nd,nd->n", X, X)
    # coverage[x] = max_{s∈S} q_s (2 − d(x, s)); starts at 0 (empty S)
    coverage = np.zeros(n, dtype=np.float64)
    heap: list[tuple[float, int]] = []
    for begin in range(0, n, chunk):
        block = X[begin : begin + chunk]
        sq = x_sq[:, None] - 2.0 * X @ block.T + x_sq[begin : begin + chunk][None, :]  # [N, chunk]
        gains = np.maximum(2.0 - np.sqrt(np.maximum(sq, 0.0)), 0.0).sum(axis=0) * q[begin : begin + chunk]
        heap.extend((-float(g), begin + j) for j, g in enumerate(gains))
    heapq.heapify(heap)
    chosen: list[int] = []
    taken = np.zeros(n, dtype=bool)
    while len(chosen) < k:
        _, candidate = heapq.heappop(heap)
        if taken[candidate]:
            continue
        similarity = q[candidate] * np.maximum(2.0 - _distances_to(X, candidate, x_sq), 0.0)
        gain = float(np.maximum(similarity - coverage, 0.0).sum())
        # lazy evaluation: a stale upper bound that still beats the next best is the true maximum
        if not heap or gain >= -heap[0][0] - 1e-9:
            chosen.append(candidate)
            taken[candidate] = True
            np.maximum(coverage, similarity, out=coverage)
        else:
            heapq.heappush(heap, (-gain, candidate))
    return chosen


def deita_select(X: np.ndarray, scores: Sequence[float], k: int, threshold: float = 0.9) -> list[int]:
    """Deita admission: by descending score, admit ``i`` iff ``max_{j admitted} cos(x_i, x_j) <= threshold``.

    Returns up to ``k`` indices (fewer when the pool runs out of sufficiently novel examples).
    """
    X = np.asarray(X, dtype=np.float32)
    scores = np.asarray(scores, dtype=float)
    if scores.shape != (X.shape[0],):
        raise ValueError(f"need one score per row: {scores.shape} scores for {X.shape[0]} rows")
    if np.any(~np.isfinite(scores)):
        bad = scores[~np.isfinite(scores)][0]
        raise ValueError(f"scores must be finite, found {bad!r}")
    _check_k(k, X.shape[0])
    admitted: list[int] = []
    admitted_vectors = np.zeros((k, X.shape[1]), dtype=np.float32)
    for index in np.argsort(-scores, kind="stable"):
        if admitted:
            if float(np.max(admitted_vectors[: len(admitted)] @ X[index])) > threshold:
                continue
        admitted_vectors[len(admitted)] = X[index]
        admitted.append(int(index))
        if len(admitted) == k:
            break
    return admitted


def random_select(n: int, k: int, seed: int = 0) -> list[int]:
    """``k`` distinct indices of ``range(n)``, uniformly at random."""
    _check_k(k, n)
    return np.random.default_rng(seed).choice(n, size=k, replace=False).tolist()


def top_k(scores: Sequence[float], k: int) -> list[int]:
    """AlpaGasus-style: the ``k`` highest scores (stable order for ties)."""
    scores = np.asarray(scores, dtype=float)
    _check_k(k, len(scores))
    return np.argsort(-scores, kind="stable")[:k].tolist()


def coverage_distance(X: np.ndarray, selected: Sequence[int], chunk: int = 4096) -> dict[str, float]:
    """``{"mean": (1/N) Σ_x d(x, S), "max": max_x d(x, S)}`` with Euclidean ``d``."""
    X = np.asarray(X, dtype=np.float32)
    if len(selected) == 0:
        raise ValueError("the selection is empty")
    S = X[np.asarray(selected)]
    s_sq = np.einsum("kd,kd->k", S, S)
    nearest = np.empty(X.shape[0], dtype=np.float64)
    for begin in range(0, X.shape[0], chunk):
        block = X[begin : begin + chunk]
        sq = np.einsum("nd,nd->n", block, block)[:, None] - 2.0 * block @ S.T + s_sq[None, :]
        nearest[begin : begin + chunk] = np.sqrt(np.maximum(sq.min(axis=1), 0.0))
    return {"mean": float(nearest.mean()), "max": float(nearest.max())}
