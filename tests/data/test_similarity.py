"""The shared Jaccard / MinHash-LSH / connected-components helpers against brute force and scipy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from trainwise.data.similarity import (MinHasher, UnionFind, candidate_probability, connected_components, jaccard,
                                       lsh_candidates)


def test_jaccard_closed_forms_and_empty_convention():
    assert jaccard({1, 2, 3}, {2, 3, 4}) == 0.5
    assert jaccard({"a"}, {"a"}) == 1.0
    assert jaccard({1}, set()) == 0.0
    # documented convention: two empty shingle sets are not evidence of a duplicate
    assert jaccard(set(), set()) == 0.0
    assert jaccard(frozenset({1, 2}), {2}) == 0.5


def test_candidate_probability_closed_form_and_validation():
    assert candidate_probability(0.5, 20, 5) == pytest.approx(1 - (1 - 0.5**5) ** 20)
    assert candidate_probability(1.0, 3, 3) == 1.0 and candidate_probability(0.0, 3, 3) == 0.0
    with pytest.raises(ValueError, match="1.5"):
        candidate_probability(1.5, 20, 5)


def test_minhash_agreement_rate_estimates_jaccard():
    rng = np.random.default_rng(0)
    base = rng.choice(10**9, size=400, replace=False).astype(np.uint64)
    a, b = base[:300], base[100:]  # |A∩B| = 200, |A∪B| = 400: J = 0.5
    hasher = MinHasher(bands=100, rows=10, seed=3)
    agree = float(np.mean(hasher.signature(a) == hasher.signature(b)))
    assert abs(agree - 0.5) < 4 * np.sqrt(0.25 / 1000)


def test_lsh_candidates_contain_every_identical_pair_and_skip_rows():
    hasher = MinHasher(bands=4, rows=2, seed=0)
    sets = [np.array([1, 2, 3], np.uint64), np.array([1, 2, 3], np.uint64), np.array([7, 8, 9], np.uint64),
            np.array([], np.uint64), np.array([], np.uint64)]
    signatures = hasher.signatures(sets)
    assert (0, 1) in lsh_candidates(signatures, 4, 2)
    assert (3, 4) in lsh_candidates(signatures, 4, 2)
    assert (3, 4) not in lsh_candidates(signatures, 4, 2, skip=[len(s) == 0 for s in sets])


def test_connected_components_match_scipy_on_random_graphs():
    csgraph = pytest.importorskip("scipy.sparse.csgraph")
    sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(1)
    for trial in range(20):
        n = int(rng.integers(2, 40))
        edges = [tuple(rng.choice(n, 2, replace=False)) for _ in range(int(rng.integers(0, n)))]
        clusters, duplicate_of = connected_components(n, edges)
        rows = [i for i, _ in edges] or [0]
        cols = [j for _, j in edges] or [0]
        data = [1] * len(edges) or [0]
        _, labels = csgraph.connected_components(sparse.coo_matrix((data, (rows, cols)), shape=(n, n)), directed=False)
        truth = sorted(sorted(np.flatnonzero(labels == c).tolist()) for c in np.unique(labels))
        assert clusters == [g for g in truth if len(g) > 1]
        for group in clusters:
            assert all(duplicate_of[m] == group[0] for m in group[1:]) and group[0] not in duplicate_of


def test_union_find_on_tuple_keys_names_groups_by_smallest_member():
    uf = UnionFind()
    uf.union((1, 5), (0, 9))
    uf.union((2, 0), (1, 5))
    uf.add((3, 3))
    assert uf.find((2, 0)) == (0, 9)
    assert uf.groups(min_size=2) == [[(0, 9), (1, 5), (2, 0)]]
    assert [g for g in uf.groups() if len(g) == 1] == [[(3, 3)]]


def test_connected_components_rejects_out_of_range_pair():
    with pytest.raises(ValueError, match=r"\(0, 7\)"):
        connected_components(3, [(0, 7)])
    assert connected_components(3, []) == ([], {})
    assert list(itertools.chain.from_iterable(connected_components(4, [(2, 1, 0.9)])[0])) == [1, 2]
