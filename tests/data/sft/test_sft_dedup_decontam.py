import itertools
import random

import numpy as np
import pytest

from trainwise.data.sft._text import char_shingles
from trainwise.data.sft.clean import CleanConfig, clean, is_truncated
from trainwise.data.sft.decontam import decontaminate
from trainwise.data.sft.dedup import MinHasher, candidate_probability, find_exact_duplicates, find_near_duplicates, jaccard
from trainwise.data.sft.loaders import SFTExample, load_jsonl


def test_minhash_collision_rate_estimates_jaccard():
    # two sets with known Jaccard 1/3: |A∩B| = 100, |A∪B| = 300
    a = set(range(200))
    b = set(range(100, 300))
    hasher = MinHasher(bands=50, rows=20, seed=1)  # 1000 hash functions
    from trainwise.data.sft._text import hash_array

    sig_a = hasher.signature(hash_array(str(x) for x in a))
    sig_b = hasher.signature(hash_array(str(x) for x in b))
    estimate = float(np.mean(sig_a == sig_b))
    assert abs(estimate - 1 / 3) < 4 * np.sqrt((1 / 3) * (2 / 3) / 1000)


def test_candidate_probability_closed_form():
    assert candidate_probability(1.0, 14, 8) == pytest.approx(1.0)
    assert candidate_probability(0.5, 20, 5) == pytest.approx(1 - (1 - 0.5**5) ** 20)
    # threshold of the S-curve ≈ (1/b)^(1/r)
    assert candidate_probability((1 / 14) ** (1 / 8), 14, 8) == pytest.approx(1 - (1 - 1 / 14) ** 14)


def test_near_duplicates_match_brute_force():
    rng = random.Random(0)
    vocab = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    base = [" ".join(rng.choice(vocab) for _ in range(12)) for _ in range(30)]
    texts = base + [t.replace(t.split()[0], "omega", 1) for t in base[:10]]  # 10 perturbed copies
    found = find_near_duplicates(texts, threshold=0.6, unit="char", guard=False)
    shingles = [char_shingles(t) for t in texts]
    truth = {(i, j) for i, j in itertools.combinations(range(len(texts)), 2) if jaccard(shingles[i], shingles[j]) >= 0.6}
    reported = {(i, j) for i, j, _ in found.pairs}
    assert reported <= truth  # verified: no false positives
    assert len(truth - reported) <= max(1, len(truth) // 20)  # LSH recall at P(0.6) ≈ 0.98
    assert all(j in found.duplicate_of for j in range(30, 40))


def test_exact_duplicates_normalise_case_space_quotes():
    assert find_exact_duplicates(["Hello  World", "hello world", "Janet’s", "janet's", "x"]) == {1: 0, 3: 2}


def test_decontamination_reports_pairs():
    evals = ["the quick brown fox jumps over the lazy dog near the river bank today", "what is two plus two"]
    train = ["unrelated text about cooking pasta with tomato sauce and basil leaves",
             "Q: The quick brown fox jumps over the lazy dog near the river bank today. A: yes",
             "What is two plus two?"]
    report = decontaminate(train, evals, ngram=8, embedding="none")
    assert report.contaminated == [1, 2]
    by = report.by_train()
    assert by[1][0].eval_index == 0 and by[1][0].overlap == 1.0 and not by[1][0].exact
    assert by[2][0].exact


def test_truncation_heuristic():
    assert is_truncated("```python\nprint(1)\n")[0]
    assert is_truncated("The answer is that the")[0]
    assert is_truncated("First, second,")[0]
    assert not is_truncated("18")[0] and not is_truncated("Austin")[0]
    assert not is_truncated("It is done.")[0]


def test_clean_counts_every_drop():
    examples = [SFTExample("What is 2+2?", "4"), SFTExample("what is 2+2 ?", "four"), SFTExample("", "x"),
                SFTExample("Explain", ""), SFTExample("Write a poem", "Roses are red and"),
                SFTExample("Name a colour", "word " * 50), SFTExample("Leak: what is the capital of France", "Paris")]
    result = clean(examples, CleanConfig(max_response_words=40), eval_texts=["Leak: what is the capital of France"])
    assert result.counts() == {"exact_duplicate": 1, "empty_prompt": 1, "empty_response": 1, "truncated_response": 1,
                               "response_too_long": 1, "contaminated": 1}
    assert result.kept_indices == [0]
    assert len(result.kept) + len(result.dropped) == len(examples)
    assert result.decontamination.collisions[0].train_index == 6


def test_gsm8k_socratic_flagged_and_train_test_clean(shared_data):
    test = load_jsonl(shared_data / "gsm8k" / "test.jsonl")
    socratic = load_jsonl(shared_data / "gsm8k" / "test_socratic.jsonl")
    train = load_jsonl(shared_data / "gsm8k" / "train.jsonl")
    # the Socratic file repeats every test question: each one is a near-duplicate of a test question
    found = find_near_duplicates([e.prompt for e in test + socratic], unit="char", only_across=[0] * len(test) + [1] * len(socratic))
    flagged = {j - len(test) for _, j, _ in found.pairs}
    assert flagged == set(range(len(socratic)))
    # and decontamination against the test questions flags the whole file (prompt + answer)
    report = decontaminate([e.prompt + "\n" + e.response for e in socratic], [e.prompt for e in test])
    assert len(report.contaminated) == len(socratic)
    # train vs test: no exact question overlap
    exact = decontaminate([e.prompt for e in train], [e.prompt for e in test]).exact
    assert exact == []


def test_dolly_near_duplicate_prompts(shared_data):
    dolly = load_jsonl(shared_data / "instruct_and_arxiv" / "dolly_hhrlhf_train_small.jsonl")
    result = clean(dolly)
    counts = result.counts()
    assert counts["exact_duplicate"] == 1  # "What is the English Premier League?" twice
    assert counts["near_duplicate"] >= 3
    near = [d for d in result.dropped if d.reason == "near_duplicate"]
    assert any("Ice and Fire" in d.example.instruction for d in near)
