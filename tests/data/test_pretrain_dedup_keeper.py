"""Which copy dedup keeps, what it writes, and filters that do not fight dedup (issue 15, items 2–4)."""

from __future__ import annotations

import json
import random

import pytest

from trainwise.cli.main import main
from trainwise.data.pretrain.report import iter_documents


_LOREM = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et "
          "dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea "
          "commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat "
          "nulla pariatur. Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit "
          "anim id est laborum. Sed ut perspiciatis unde omnis iste natus error sit voluptatem accusantium doloremque "
          "laudantium, totam rem aperiam, eaque ipsa quae ab illo inventore veritatis et quasi architecto beatae vitae "
          "dicta sunt explicabo.")
_MENU = ["Home", "About the shop", "Terms of service", "Contact and support", "Cart (0)", "Gift cards for the holidays",
         "Women", "Men", "Kids and babies", "Sale of the week", "New arrivals", "Shoes and boots", "Bags and accessories",
         "Delivery and returns", "Track your order", "Store finder", "Careers at the company", "Press",
         "Sustainability report", "Privacy and cookies", "Accessibility", "Sign in", "Create an account", "Wishlist",
         "Newsletter sign-up", "Follow us on Instagram", "Follow us on Facebook", "Download the app", "Help centre",
         "Size guide", "Student discount", "Refer a friend", "Klarna", "PayPal",
         "© 2024 The Shop Ltd. All rights reserved"]


def _edit(text: str, rate: float, rng: random.Random, vocab: list[str]) -> str:
    words = text.split()
    return " ".join(rng.choice(vocab) if rng.random() < rate else w for w in words)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """40 book passages and the C4 pages, each with 1–3 copies whose words were replaced at 0.2–1.2 %."""
    from tests.conftest import SHARED_DATA
    import gzip

    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    rng = random.Random(15)
    book = (SHARED_DATA / "gutenberg_pride_and_prejudice" / "1342-0.txt").read_text(encoding="utf-8")
    words = book[book.index("It is a truth universally"):].split()
    vocab = sorted(set(words))
    bases = [" ".join(words[i:i + 300]) for i in range(0, 300 * 40, 300)]
    for path in sorted((SHARED_DATA / "web_samples" / "olmo_c4").glob("*.json.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            bases += [t for t in (json.loads(line)["text"] for line in f) if len(t.split()) >= 150]
    rows = []
    for i, base in enumerate(bases):
        rows.append({"id": f"b{i}", "text": base})
        for j in range(rng.choice([1, 1, 2, 3])):
            rows.append({"id": f"b{i}-copy{j}", "text": _edit(base, rng.uniform(0.002, 0.012), rng, vocab)})
    rng.shuffle(rows)  # input order must not be what finds the original
    root = tmp_path_factory.mktemp("planted")
    with (root / "planted.jsonl").open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    (root / "corpus.yaml").write_text("output: out\nsources:\n  - {name: books, paths: [planted.jsonl]}\n")
    assert main(["data", "curate", str(root / "corpus.yaml"), "--dedup-only"]) == 0
    return root, {f"b{i}": base for i, base in enumerate(bases)}


def test_the_unedited_original_is_kept(planted):
    root, originals = planted
    kept: dict[str, list[str]] = {}
    for row in iter_documents(root / "out" / "documents"):
        kept.setdefault(str(row["id"]).split("-")[0], []).append(row["text"])
    clustered = [b for b in originals if len(kept.get(b, [])) == 1]
    assert len(clustered) >= 0.85 * len(originals)  # the copies were found
    hits = sum(kept[b][0] == originals[b] for b in clustered)
    print(f"original kept in {hits}/{len(clustered)} clusters")
    assert hits >= 0.95 * len(clustered)


def test_clusters_pairs_and_accounting_add_up(planted):
    root, originals = planted
    work = root / "out" / "_work"
    summary = json.loads((work / "dedup" / "summary.json").read_text())
    assert summary["lsh_candidate_pairs"] == (summary["lsh_pairs_exact"] + summary["lsh_pairs_verified"]
                                              + summary["lsh_pairs_rejected"])
    clusters = [json.loads(line) for line in (work / "dedup" / "clusters.jsonl").open()]
    assert len(clusters) == summary["clusters"]
    assert summary["documents_removed"] == summary["documents_in_clusters"] - summary["clusters"]
    for cluster in clusters:
        kept = [m for m in cluster["members"] if m["kept"]]
        assert len(kept) == 1 and kept[0]["id"] == cluster["keeper"]["id"]
        assert len({m["id"].split("-")[0] for m in cluster["members"]}) == 1  # one original's family
    dropped = list(iter_documents(work / "dropped" / "dedup"))
    assert len(dropped) == summary["documents_removed"]
    ids = {c["cluster_id"] for c in clusters}
    assert all(r["metadata"]["duplicate_cluster_id"] in ids and r["metadata"]["filter_reason"].startswith("dedup:")
               for r in dropped)
    report = json.loads((root / "out" / "report.json").read_text())
    assert report["files"]["clusters"].endswith("clusters.jsonl")


def test_whitespace_only_lines_are_blank_for_repetition_rules():
    from datatrove.data import Document

    from trainwise.data.pretrain.filters import FilterConfig, make_kind_aware_filter

    import pydoc_data.topics

    lines = [line.strip() for line in pydoc_data.topics.topics["if"].splitlines() if len(line.split()) >= 4]
    rule = make_kind_aware_filter(FilterConfig(kind_rules={"web": ["gopher_repetition"]}))
    blank = rule.filter(Document(text="\n\n".join(lines), id="x", metadata={"kind": "web"}))
    spaced = rule.filter(Document(text="\n   \n".join(lines), id="y", metadata={"kind": "web"}))
    assert blank is True and spaced is True, spaced


def test_whitespace_copies_are_exact_duplicates_and_dedup_can_run_before_filters(tmp_path, capsys, shared_data):
    book = (shared_data / "gutenberg_pride_and_prejudice" / "1342-0.txt").read_text(encoding="utf-8")
    start = book.index("It is a truth universally")
    text, other = book[start:start + 3000], book[start + 5000:start + 8000]
    spaced = text.replace(". ", ".\n  \t\n", 3).replace(" ", "   ", 5)
    rows = [{"id": "a", "text": text}, {"id": "b", "text": spaced}, {"id": "c", "text": other}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "corpus.yaml").write_text("output: out\nsources:\n  - {name: web, paths: [in.jsonl]}\n"
                                          "dedup: {before_filters: true}\n")
    assert main(["data", "curate", str(tmp_path / "corpus.yaml")]) == 0
    printed = capsys.readouterr().out
    assert "rejected:" in printed and "clusters:" in printed
    summary = json.loads((tmp_path / "out" / "_work" / "dedup" / "summary.json").read_text())
    assert summary["removed_exact_duplicates"] == 1 and summary["exact_duplicate_groups"] == 1
    # one source: the mix says so instead of "INFEASIBLE"
    assert main(["data", "mix", str(tmp_path / "corpus.yaml"), "--budget", "1M"]) == 0
    printed = capsys.readouterr().out
    assert "one source" in printed and "INFEASIBLE" not in printed


def test_bad_dedup_and_filter_keys_name_the_file_and_what_is_allowed(tmp_path):
    from trainwise.data.pretrain.config import load_config

    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    for section, message in (("dedup: {before_filter: true}", "unknown dedup option(s) ['before_filter']"),
                             ("dedup: {before_filters: 1}", "dedup.before_filters must be true or false"),
                             ("filters: {enabled: 'no'}", "filters.enabled must be true or false")):
        path = tmp_path / "c.yaml"
        path.write_text(f"sources:\n  - {{name: a, paths: [a.jsonl]}}\n{section}\n")
        with pytest.raises(ValueError) as info:
            load_config(path)
        assert str(path) in str(info.value) and message in str(info.value)


def test_explicit_kind_beats_input_order_and_a_name_does_not_turn_filters_off(tmp_path, shared_data):
    book = (shared_data / "gutenberg_pride_and_prejudice" / "1342-0.txt").read_text(encoding="utf-8")
    start = book.index("It is a truth universally")
    passage = book[start:start + 4000]
    # junk that book rules keep and web rules drop (so a name read as a kind would keep it)
    junk = [_LOREM, "\n".join(_MENU)]
    (tmp_path / "crawl.jsonl").write_text(json.dumps({"id": "crawl-copy", "text": passage}) + "\n")
    (tmp_path / "books.jsonl").write_text(
        json.dumps({"id": "book-copy", "text": passage}) + "\n"
        + "".join(json.dumps({"id": f"junk{i}", "text": t}) + "\n" for i, t in enumerate(junk)))
    (tmp_path / "named.jsonl").write_text("".join(json.dumps({"id": f"named-junk{i}", "text": t}) + "\n"
                                                  for i, t in enumerate(junk)))
    (tmp_path / "corpus.yaml").write_text(
        "output: out\nsources:\n"
        "  - {name: crawl, paths: [crawl.jsonl]}\n"          # listed first: input order would keep its copy
        "  - {name: library, paths: [books.jsonl], kind: book}\n"
        "  - {name: books, paths: [named.jsonl]}\n")        # a name, not a kind: junk must still be dropped
    assert main(["data", "curate", str(tmp_path / "corpus.yaml")]) == 0
    kept = {str(r["id"]) for r in iter_documents(tmp_path / "out" / "documents")}
    assert "book-copy" in kept and "crawl-copy" not in kept
    assert not {"named-junk0", "named-junk1"} & kept
    assert {"junk0", "junk1"} <= kept  # the same text under `kind: book` gets book rules, as the config says


@pytest.mark.parametrize("section, message", [
    ("preferences: {preset: trainwise, weight: {book: 3}}", "unknown preferences option(s) ['weight']"),
    ("mixture: {budget: 1B, max_epoch: 2}", "unknown mixture option(s) ['max_epoch']"),
    ("dsir: {targets: [a.jsonl]}", "unknown dsir option(s) ['targets']"),
])
def test_misspelt_section_keys_are_refused(tmp_path, section, message):
    from trainwise.data.pretrain.config import load_config

    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    (tmp_path / "c.yaml").write_text(f"sources:\n  - {{name: a, paths: [a.jsonl]}}\n{section}\n")
    with pytest.raises(ValueError, match=r"c\.yaml: " + message.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)").replace("]", r"\]")):
        load_config(tmp_path / "c.yaml")
