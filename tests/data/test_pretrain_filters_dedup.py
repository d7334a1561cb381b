"""Kind-aware filters and verified MinHash dedup on the real samples (need datatrove: extra [data])."""

from __future__ import annotations

import gzip
import json
import random
import string

import pytest

pytest.importorskip("datatrove", reason="datatrove is not installed (pip install 'trainwise[data]')")
pytest.importorskip("spacy", reason="datatrove's English word tokenizer needs spaCy (pip install 'trainwise[data]')")

from datatrove.data import Document  # noqa: E402
from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter  # noqa: E402

from trainwise.data.pretrain.dedup import (  # noqa: E402
    MinHashSettings,
    NearDuplicateIndex,
    candidate_probability,
    jaccard,
)
from trainwise.data.pretrain.filters import FilterConfig, make_kind_aware_filter  # noqa: E402
from trainwise.data.pretrain.kinds import classify_kind  # noqa: E402


def _rows(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _doc(row, i):
    meta = {k: v for k, v in row.items() if k != "text"}
    meta["kind"] = classify_kind(row["text"], meta).kind
    return Document(text=row["text"], id=str(i), metadata=meta)


@pytest.fixture(scope="module")
def kind_filter():
    return make_kind_aware_filter(FilterConfig())


def _decide(flt, rows):
    out = []
    for i, row in enumerate(rows):
        doc = _doc(row, i)
        before = doc.text
        result = flt.filter(doc)
        assert doc.text == before, "a filter changed the text of a document"
        out.append(result if isinstance(result, tuple) else (True, None))
    return out


def test_papers_forum_posts_and_nih_abstracts_are_kept_where_datatrove_drops_them(shared_data, kind_filter):
    mix = shared_data / "web_samples" / "data_juicer_mixture"
    arxiv = _rows(shared_data / "instruct_and_arxiv" / "arxiv.jsonl")[:4]  # long papers: 4 keep this fast
    stackexchange = _rows(mix / "redpajama-pile-stackexchange-refined.jsonl")
    nih = _rows(mix / "the-pile-nih-refined.jsonl")
    gopher = GopherQualityFilter()  # datatrove defaults: the alpha-word rule counts punctuation as words
    for name, rows, datatrove_min_drops in (("arxiv", arxiv, 2), ("stackexchange", stackexchange, 6), ("nih", nih, 1)):
        decisions = _decide(kind_filter, rows)
        kept = sum(keep for keep, _ in decisions)
        assert kept == len(rows), (name, [reason for keep, reason in decisions if not keep])
        datatrove_drops = sum(gopher.filter(Document(text=r["text"], id="x")) is not True for r in rows)
        assert datatrove_drops >= datatrove_min_drops, (name, datatrove_drops)


def test_boilerplate_pages_are_dropped_for_the_right_reasons(shared_data, kind_filter):
    rows = _rows(shared_data / "web_samples" / "dolma" / "provided_documents_000.json.gz")
    decisions = _decide(kind_filter, rows)
    reasons = [reason for keep, reason in decisions if not keep]
    assert len(reasons) >= 5
    # menus, archive lists and calendars: number-heavy or unpunctuated lines, never "too long" or "stop words"
    allowed = {"gopher_quality:gopher_below_alpha_threshold", "fineweb:line_punct_ratio", "fineweb:short_line_ratio",
               "c4:too_few_sentences", "gopher_repetition:dup_line_frac", "fineweb:char_dup_ratio"}
    assert set(reasons) <= allowed, reasons
    # the archive page "Tag Archives … 1896 1897 1898 …" (index 2) goes for its share of non-words
    assert decisions[2] == (False, "gopher_quality:gopher_below_alpha_threshold")


def test_c4_rules_decide_on_a_copy_and_never_rewrite_kept_text():
    text = ("The committee met on Monday to discuss the budget.\nMenu\nPlease enable JavaScript to view this page.\n"
            "It approved the plan after a long debate.\nThe vote was close.\nMembers thanked the chair.\n"
            "Next meeting is in May.\n")
    short_ok = make_kind_aware_filter(FilterConfig.from_dict({"gopher_quality": {"min_doc_words": 5}}))
    doc = Document(text=text, id="x", metadata={"kind": "web"})
    assert short_ok.filter(doc) is True
    assert doc.text == text
    assert 0 < doc.metadata["c4_line_drop_frac"] < 1
    copy = Document(text=text, id="y")
    C4QualityFilter().filter(copy)
    assert copy.text != text  # datatrove's own filter edits the text; ours does not


def test_filter_config_rejects_unknown_options():
    with pytest.raises(ValueError, match="'gopher_qualty'"):
        FilterConfig.from_dict({"gopher_qualty": {}})
    with pytest.raises(ValueError, match="'c5'"):
        FilterConfig.from_dict({"kind_rules": {"web": ["c5"]}})
    with pytest.raises(ValueError, match="min_doc_word"):
        make_kind_aware_filter(FilterConfig.from_dict({"gopher_quality": {"min_doc_word": 10}}))


def test_three_editions_of_the_book_are_near_duplicates(shared_data):
    folder = shared_data / "gutenberg_pride_and_prejudice"
    opening = "It is a truth universally acknowledged"
    texts = []
    for name in ("1342-0.txt", "1342.txt", "pandp12.txt"):
        text = (folder / name).read_text(encoding="utf-8", errors="replace")
        start = text.index(opening)
        texts.append(text[start:start + 60_000])  # the first chapters of each edition (fast)
    index = NearDuplicateIndex(MinHashSettings())
    index.add_many(texts + ["An unrelated text about the weather and the sea " * 30])
    pairs = index.verified_pairs()
    assert {(i, j) for i, j, _ in pairs} == {(0, 1), (0, 2), (1, 2)}
    assert all(similarity >= 0.8 for _, _, similarity in pairs)
    assert index.clusters() == [[0, 1, 2]]


@pytest.mark.slow
def test_three_full_editions_are_near_duplicates(shared_data):
    folder = shared_data / "gutenberg_pride_and_prejudice"
    index = NearDuplicateIndex()
    index.add_many((folder / n).read_text(encoding="utf-8", errors="replace") for n in ("1342-0.txt", "1342.txt", "pandp12.txt"))
    sims = {(i, j): s for i, j, s in index.verified_pairs()}
    assert sims[(0, 1)] > 0.999 and 0.95 < sims[(0, 2)] < 0.97  # README: 0.9997 and ≈ 0.958


def test_lsh_candidates_below_threshold_are_not_removed():
    index = NearDuplicateIndex(MinHashSettings(threshold=0.8))
    # 24 base texts, each with a variant that replaces every k-th word (k = 26..37): 5-gram Jaccard ≈ 0.67-0.79,
    # where bare LSH (14 bands x 8 rows) still proposes a pair with probability 0.2-0.7
    rng = random.Random(0)

    def word():  # letters only: datatrove's normalisation maps every digit to 0
        return "".join(rng.choice(string.ascii_lowercase) for _ in range(7))

    for b in range(24):
        words = [word() for _ in range(400)]
        k = 26 + b % 12
        index.add(" ".join(words))
        index.add(" ".join(word() if (i + b) % k == 0 else w for i, w in enumerate(words)))
        if b == 0:
            first = " ".join(words)
    index.add(first)  # an exact copy of base 0: must be verified
    candidates = index.candidate_pairs()
    verified = index.verified_pairs()
    assert {(i, j) for i, j, _ in verified} <= candidates
    for i, j in candidates:
        s = index.similarity(i, j)
        assert ((i, j, s) in verified) == (s >= 0.8)
    assert (0, 48, 1.0) in verified
    below = [index.similarity(i, j) for i, j in candidates if index.similarity(i, j) < 0.8]
    assert below, "expected bare LSH to propose some pairs below 0.8"


def test_jaccard_and_candidate_probability_closed_forms():
    assert jaccard({1, 2, 3}, {2, 3, 4}) == 0.5
    assert jaccard(set(), set()) == 0.0  # one definition for pre-training and SFT (trainwise.data.similarity)
    assert abs(candidate_probability(0.8) - (1 - (1 - 0.8**8) ** 14)) < 1e-15
    assert candidate_probability(0.8) > 0.92 and candidate_probability(0.5) < 0.06
