"""Kinds, preference, density, DSIR and the mixture planner: numpy only (no datatrove needed)."""

from __future__ import annotations

import gzip
import json
import math
import zlib

import numpy as np
import pytest

from trainwise.data.pretrain.density import density_signals
from trainwise.data.pretrain.dsir import DSIRScorer, HashedNgramModel, gumbel_top_k
from trainwise.data.pretrain.kinds import KINDS, classify_kind, preference_score, preference_weights
from trainwise.data.pretrain.mixture import MixtureSampler, MixtureSource, parse_token_count, plan_mixture


def _jsonl(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# --- kinds and preference ---------------------------------------------------------------------------
def test_kind_from_metadata_wins_and_unknown_kind_is_rejected():
    assert classify_kind("anything", {"kind": "book"}).kind == "book"
    assert classify_kind("x", {"meta": "{'pile_set_name': 'NIH ExPorter'}"}).kind == "paper"
    assert classify_kind("x", {"url": "https://en.wikipedia.org/wiki/Jazz"}).kind == "encyclopedia"
    with pytest.raises(ValueError, match="'novel'"):
        classify_kind("x", {"kind": "novel"})


def test_kinds_of_real_samples_from_text(shared_data):
    mix = shared_data / "web_samples" / "data_juicer_mixture"
    papers = [classify_kind(r["text"]).kind for r in _jsonl(shared_data / "instruct_and_arxiv" / "arxiv.jsonl")]
    forum = [classify_kind(r["text"]).kind for r in _jsonl(mix / "redpajama-pile-stackexchange-refined.jsonl")]
    book = shared_data / "gutenberg_pride_and_prejudice" / "1342-0.txt"
    assert papers.count("paper") == len(papers)
    assert forum.count("forum") == len(forum)
    assert classify_kind(book.read_text(encoding="utf-8")).kind == "book"
    c4 = [classify_kind(r["text"]).kind for r in _jsonl(shared_data / "web_samples/olmo_c4/c4-sample.01.json.gz")]
    assert c4.count("web") >= 8


def test_books_and_papers_outrank_web_pages(shared_data):
    weights = preference_weights()
    book = classify_kind((shared_data / "gutenberg_pride_and_prejudice" / "1342-0.txt").read_text(encoding="utf-8"))
    paper_scores = [preference_score(classify_kind(r["text"]), weights)
                    for r in _jsonl(shared_data / "instruct_and_arxiv" / "arxiv.jsonl")]
    web_scores = [preference_score(classify_kind(r["text"], {k: v for k, v in r.items() if k != "text"}), weights)
                  for r in _jsonl(shared_data / "web_samples/dolma/provided_documents_000.json.gz")]
    assert preference_score(book, weights) > max(web_scores)
    assert min(paper_scores) > max(web_scores)


def test_preference_presets_are_the_published_epochs():
    pile = preference_weights("pile")
    assert (pile["encyclopedia"], pile["book"], pile["paper"], pile["forum"], pile["web"]) == (3.0, 2.5, 2.0, 2.0, 1.0)
    llama = preference_weights("llama")
    assert (llama["encyclopedia"], llama["book"], llama["web"]) == (2.45, 2.23, 1.10)
    assert set(preference_weights()) == set(KINDS)
    with pytest.raises(ValueError, match="'poems'"):
        preference_weights("trainwise", {"poems": 2.0})
    with pytest.raises(ValueError, match="nan"):
        preference_weights("trainwise", {"book": float("nan")})


# --- density -------------------------------------------------------------------------------------
def test_density_signals_match_direct_computation():
    text = "Alpha beta gamma 42. Alpha beta delta! $x^2$ and the proof."
    s = density_signals(text)
    words = ["alpha", "beta", "gamma", "42", "alpha", "beta", "delta", "x", "2", "and", "the", "proof"]
    assert s["n_words"] == len(words)
    assert s["compression_ratio"] == round(len(zlib.compress(text.encode(), 6)) / len(text.encode()), 4)
    trigrams = {tuple(words[i:i + 3]) for i in range(len(words) - 2)}
    assert s["distinct_3gram_ratio"] == round(len(trigrams) / (len(words) - 2), 4)
    assert s["number_ratio"] == round(2 / 12, 4)
    content = [w for w in words if w.isalpha() and w not in ("and", "the")]
    assert s["content_word_ratio"] == round(len(content) / 12, 4)
    assert s["approx_tokens"] == round(len(text) / 4)


def test_boilerplate_is_less_dense_than_a_paper(shared_data):
    paper = _jsonl(shared_data / "instruct_and_arxiv" / "arxiv.jsonl")[0]["text"]
    template = "Home | About | Contact | Privacy policy | Terms of use\n" * 40
    assert density_signals(paper)["density_score"] > density_signals(template)["density_score"] + 0.3
    assert density_signals("")["density_score"] == 0.0
    papers = [density_signals(r["text"])["density_score"] for r in _jsonl(shared_data / "instruct_and_arxiv" / "arxiv.jsonl")[:6]]
    c4 = [density_signals(r["text"])["density_score"] for r in _jsonl(shared_data / "web_samples/olmo_c4/c4-sample.01.json.gz")]
    assert np.mean(papers) > np.mean(c4) + 0.1


# --- DSIR ----------------------------------------------------------------------------------------
def test_dsir_ranks_in_domain_above_out_of_domain(shared_data):
    mix = shared_data / "web_samples" / "data_juicer_mixture"
    target = [r["text"] for r in _jsonl(mix / "redpajama-arxiv-sample.jsonl")]
    in_domain = [r["text"] for r in _jsonl(shared_data / "instruct_and_arxiv" / "arxiv.jsonl")][:10]
    out_domain = [r["text"] for f in ("c4-sample.01.json.gz", "c4-sample.02.json.gz")
                  for r in _jsonl(shared_data / "web_samples" / "olmo_c4" / f)]
    raw = in_domain + out_domain + [r["text"] for r in _jsonl(mix / "redpajama-cc-2023-06-refined.jsonl")]
    scorer = DSIRScorer.fit(target, raw)
    s_in = [scorer.score(t)["dsir_score"] for t in in_domain]
    s_out = [scorer.score(t)["dsir_score"] for t in out_domain]
    auc = np.mean([a > b for a in s_in for b in s_out])
    assert auc == 1.0, (sorted(s_in), sorted(s_out))


def test_dsir_log_weight_is_sum_of_log_ratios_and_state_round_trips():
    scorer = DSIRScorer.fit(["a b c", "a b"], ["c d e", "a e"], num_buckets=64)
    from trainwise.data.pretrain.dsir import _features

    feats = _features("a b e", 64)

    def log_p(texts):  # independent: per-document normalised histograms + 0.01 per bucket
        counts = np.full(64, 0.01)
        for t in texts:
            f = _features(t, 64)
            for j in f:
                counts[j] += 1.0 / len(f)
        return np.log(counts / counts.sum())

    lt, lr = log_p(["a b c", "a b"]), log_p(["c d e", "a e"])
    assert math.isclose(scorer.score("a b e")["dsir_log_weight"], float((lt - lr)[feats].sum()), abs_tol=1e-4)
    again = DSIRScorer.from_state_dict(json.loads(json.dumps(scorer.state_dict())))
    assert again.score("a b e") == scorer.score("a b e")
    with pytest.raises(ValueError, match="empty"):
        DSIRScorer.fit([], ["x"])
    with pytest.raises(ValueError, match="num_buckets"):
        HashedNgramModel(1)


def test_gumbel_top_k_samples_proportionally():
    log_w = np.log([0.7, 0.2, 0.1])
    firsts = np.bincount([gumbel_top_k(log_w, 1, seed=s)[0] for s in range(3000)], minlength=3) / 3000
    assert np.allclose(firsts, [0.7, 0.2, 0.1], atol=0.03)
    picked = gumbel_top_k(log_w, 3, seed=1)
    assert sorted(picked) == [0, 1, 2]
    with pytest.raises(ValueError, match="NaN"):
        gumbel_top_k([0.0, float("nan")], 1)


# --- mixture -------------------------------------------------------------------------------------
def test_plan_without_caps_gives_epochs_proportional_to_preference_times_quality():
    sources = [MixtureSource("books", 1e6, preference=2.5, quality=0.8), MixtureSource("web", 1e8, preference=1.0)]
    plan = plan_mixture(sources, "50M", max_epochs=100)
    e_books, e_web = (r["epochs"] for r in plan.sources)
    assert math.isclose(e_books / e_web, 2.5 * 0.8)
    assert math.isclose(plan.total_tokens, 5e7)
    assert math.isclose(sum(plan.weights().values()), 1.0)


def test_plan_caps_epochs_like_the_pile_and_refills_budget_elsewhere():
    sources = [MixtureSource("wiki", 6e9, preference=3.0, max_epochs=3.0),
               MixtureSource("books", 25e9, preference=2.5, max_epochs=2.5),
               MixtureSource("cc", 230e9, preference=1.0, max_epochs=1.0),
               MixtureSource("arxiv", 56e9, preference=2.0, max_epochs=2.0)]
    plan = plan_mixture(sources, "300B")
    rows = {r["name"]: r for r in plan.sources}
    assert all(r["epochs"] <= r["max_epochs"] + 1e-12 for r in rows.values())
    assert math.isclose(plan.total_tokens, 300e9, rel_tol=1e-9)
    assert plan.feasible
    # brute force: bisection on λ of Σ min(λ a_s, c_s) n_s = B gives the same epochs
    lo, hi = 0.0, 10.0
    for _ in range(200):
        mid = (lo + hi) / 2
        tot = sum(min(mid * s.preference, s.max_epochs) * s.tokens for s in sources)
        lo, hi = (mid, hi) if tot < 300e9 else (lo, mid)
    for s in sources:
        assert math.isclose(rows[s.name]["epochs"], min(lo * s.preference, s.max_epochs), rel_tol=1e-6)


def test_infeasible_plan_is_flagged_and_bad_input_rejected():
    plan = plan_mixture([MixtureSource("a", 100, max_epochs=2)], 1000)
    assert not plan.feasible and plan.total_tokens == 200
    with pytest.raises(ValueError, match="'lots'"):
        parse_token_count("lots")
    with pytest.raises(ValueError, match="nan"):
        MixtureSource("a", float("nan"))
    assert parse_token_count("300B") == 3e11 and parse_token_count("1.5M") == 1.5e6 and parse_token_count(2e9) == 2e9


def test_mixture_sampler_follows_weights_and_resumes_exactly():
    weights = {"books": 0.2, "papers": 0.3, "web": 0.5}
    sampler = MixtureSampler(weights)
    draws = [sampler.next() for _ in range(1000)]
    for name, w in weights.items():
        assert abs(draws.count(name) - 1000 * w) < 1.0
    a = MixtureSampler(weights)
    for _ in range(17):
        a.next()
    b = MixtureSampler(weights)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert [a.next() for _ in range(50)] == [b.next() for _ in range(50)]
    with pytest.raises(ValueError, match="-1"):
        MixtureSampler({"a": -1})
