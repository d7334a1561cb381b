"""Planted evaluation sets for issue 16 items 1-4: truth is known by construction, never read from the code."""

from __future__ import annotations

import json
import random

import pytest

from planted import LEVELS, TEMPLATED_PAIRS, edit_to_jaccard, rewrite
from trainwise.data.sft.clean import CleanConfig, clean
from trainwise.data.sft.decontam import decontaminate
from trainwise.data.sft.dedup import find_near_duplicates
from trainwise.data.sft.loaders import SFTExample, load_jsonl, parse_record
from trainwise.data.sft.report import curate

# GSM8K train questions that are the same problem as a test question with numbers or names changed
# (read by hand: train/plane 270 and 360 miles in 3 hours, Bella/Max stamps, Emir/Tyler dictionary, Chad/Kimberly cat food)
GSM8K_TEMPLATED_TWINS = {20, 1314, 2600, 3726, 5162}


def _questions(path):
    return [json.loads(line)["question"] for line in open(path, encoding="utf-8")]


def test_decontamination_recall_per_rewrite_level_and_no_false_flag(shared_data):
    train = _questions(shared_data / "gsm8k" / "train.jsonl")
    test = _questions(shared_data / "gsm8k" / "test.jsonl")
    # held apart from the calibration draw (seed 0) used to choose the defaults
    rng = random.Random(1)
    picked = rng.sample(range(len(test)), 100)
    evals = [test[i] for i in picked]
    recall = {}
    for level in LEVELS:
        planted = [rewrite(test[i], level, random.Random(1000 + k)) for k, i in enumerate(picked)]
        report = decontaminate(planted + train[:400], evals)
        hits = {c.train_index for c in report.collisions if c.train_index == c.eval_index}
        assert not [c for c in report.collisions if c.train_index >= 100]  # clean train items never flagged
        recall[level] = len(hits) / 100
    assert recall["verbatim"] == 1.0 and recall["numbers"] >= 0.9 and recall["light"] >= 0.9 and recall["heavy"] >= 0.5, recall
    # the whole clean split: 7,473 train questions vs 1,319 test questions
    flagged = set(decontaminate(train, test).contaminated)
    assert flagged == GSM8K_TEMPLATED_TWINS


def test_decontamination_evidence_names_eval_item_and_similarity():
    evals = ["Tom has 3 apples and buys 5 more apples at the market on Monday. How many apples does Tom have now?"]
    train = [rewrite(evals[0], "numbers", random.Random(3)), "Write a haiku about the sea."]
    result = clean([SFTExample(t, "An answer that is long enough to keep.") for t in train], eval_texts=evals)
    dropped = {d.index: d for d in result.dropped}
    assert set(dropped) == {0} and dropped[0].reason == "contaminated"
    assert "eval item 0 'Tom has 3 apples" in dropped[0].detail and "number-masked 5-grams" in dropped[0].detail


def _dolly_prompts(shared_data):
    return [e.instruction for e in load_jsonl(shared_data / "instruct_and_arxiv" / "dolly_hhrlhf_train_small.jsonl")]


@pytest.mark.parametrize("target", [0.85, 0.8])
def test_near_duplicates_at_word_jaccard(shared_data, target):
    prompts = [p for p in _dolly_prompts(shared_data) if 8 <= len(p.split()) <= 60]
    rng = random.Random(int(target * 100))
    originals, edits = [], []
    for prompt in rng.sample(prompts, 200):
        edited = edit_to_jaccard(prompt, target, rng)
        if edited is not None:
            originals.append(prompt)
            edits.append(edited)
        if len(edits) == 30:
            break
    assert len(edits) == 30
    texts = originals + edits
    found = find_near_duplicates(texts)
    caught = {j - 30 for i, j, _ in found.pairs if j - 30 == i}
    # measured 29/30 at both levels: the one miss deletes a word the template guard protects ("one", "North")
    assert len(caught) >= 29


def test_templated_prompts_are_not_merged():
    texts = [t for pair in TEMPLATED_PAIRS for t in pair]
    found = find_near_duplicates(texts)
    merged = {(i, j) for i, j, _ in found.pairs}
    # known misses: the same words in another order ("Celsius to Fahrenheit" vs reverse)
    assert merged == {(32, 33), (34, 35)}  # and "Friday" vs "Monday": weekdays are not in the guard
    assert len(found.guarded) >= 15


def test_quality_floor_drops_planted_junk_with_reasons(shared_data):
    dolly = load_jsonl(shared_data / "instruct_and_arxiv" / "dolly_hhrlhf_train_small.jsonl")
    rng = random.Random(0)
    base = [e for e in dolly if len(e.response.split()) >= 25 and e.response.rstrip().endswith(".")][:300]
    junk = []
    for k, e in enumerate(base[:12]):
        junk.append(("refusal", SFTExample(e.prompt, "As an AI language model, I cannot help with that request.")))
    for k, e in enumerate(base[12:24]):
        junk.append(("short_answer", SFTExample("Write a short story about " + e.instruction[:60], ["ok", "Yes.", "Sure"][k % 3])))
    for k, e in enumerate(base[24:36]):
        tokens = e.response.split()
        cut = rng.randrange(len(tokens) // 2, len(tokens) - 1)
        while tokens[cut - 1][-1] in ".!?:;":
            cut -= 1
        junk.append(("truncated_response", SFTExample(e.prompt, " ".join(tokens[:cut]))))
    clean_items = base[36:]
    examples = clean_items + [e for _, e in junk]
    result = clean(examples, CleanConfig(near_dedup=False, exact_dedup=False))
    reasons = {d.index: d.reason for d in result.dropped}
    offset = len(clean_items)
    got = {}
    for k, (want, _) in enumerate(junk):
        got.setdefault(want, 0)
        got[want] += reasons.get(offset + k) == want
    assert got["refusal"] == 12 and got["short_answer"] == 12 and got["truncated_response"] >= 9, got
    false_drops = [i for i in reasons if i < offset]
    assert len(false_drops) <= 3  # ≤ 1% of clean answers


def test_shifted_answers_dropped_as_unrelated(shared_data):
    gsm = load_jsonl(shared_data / "gsm8k" / "train.jsonl")[:400]
    shifted = list(range(0, 100, 2))  # 50 answers shifted by one position among themselves
    examples = [SFTExample(e.prompt, e.response, source=e.source) for e in gsm]
    for k, i in enumerate(shifted):
        examples[i] = SFTExample(gsm[i].prompt, gsm[shifted[(k + 1) % len(shifted)]].response, source=gsm[i].source)
    result = clean(examples, CleanConfig(near_dedup=False))
    unrelated = {d.index for d in result.dropped if d.reason == "unrelated_answer"}
    assert unrelated <= set(shifted)
    assert len(unrelated) >= 30


def test_small_task_kept_and_mix_applied_once():
    rng = random.Random(0)
    vocab = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda omicron sigma tau upsilon phi chi psi".split()

    def example(task, k):
        words = " ".join(rng.choice(vocab) for _ in range(10))
        return SFTExample(f"Explain {task} case {k}: {words}?", f"Here is a full answer about {task} {k} and {words}.", task=task)

    examples = [example("big", k) for k in range(250)] + [example("mid", k) for k in range(40)] + [example("tiny", k) for k in range(10)]
    result = curate(examples, k=75, embed_backend="tfidf", config=CleanConfig(near_dedup=False))
    per_task = {}
    for e in result.selected:
        per_task[e.task] = per_task.get(e.task, 0) + 1
    # T = 2: r ∝ √e = 15.8 : 6.3 : 3.2, so tiny gets 75 · 0.124 ≈ 9 of its 10 (proportional gave 75 · 10/300 ≈ 2)
    assert per_task["tiny"] == 9 and sum(per_task.values()) == 75
    mixture = result.report["mixture"]
    assert mixture["applied_in"] == "selection" and mixture["mode"] == "proportional" and mixture["temperature"] is None
    assert all(abs(row["expected_epochs"] - 1.0) < 1e-9 for row in mixture["tasks"])
    assert result.report["diversity_random"]["examples"] == 75


FIXTURES = {
    "dolly": ({"instruction": "Summarise the passage.", "context": "Cats sleep a lot.", "response": "Cats sleep much.",
               "category": "summarization"}, "Summarise the passage.\n\nCats sleep a lot.", "Cats sleep much."),
    "sharegpt_tools": ({"conversations": [{"from": "human", "value": "Weather in Paris?"},
                                          {"from": "function_call", "value": "{\"name\": \"weather\"}"},
                                          {"from": "observation", "value": "{\"temp\": 20}"},
                                          {"from": "gpt", "value": "It is 20 degrees."},
                                          {"from": "human", "value": "Thanks!"}]},
                       "user: Weather in Paris?\nassistant: {\"name\": \"weather\"}\ntool: {\"temp\": 20}", "It is 20 degrees."),
    "openai_parts": ({"messages": [{"role": "user", "content": [{"type": "text", "text": "What is shown?"},
                                                                 {"type": "image_url", "image_url": {"url": "x"}}]},
                                   {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]}]},
                     "user: What is shown?\n[image_url]", "A cat."),
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_format_fixtures(name):
    record, prompt, response = FIXTURES[name]
    example = parse_record(record, "f.jsonl", 3)
    assert (example.prompt, example.response) == (prompt, response)
    if name == "sharegpt_tools":
        assert example.meta["notes"] == ["1 trailing turn(s) after the last assistant turn not used (user): they have no answer to train on"]
