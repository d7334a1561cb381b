"""`data mix`: per-kind weights inside a mixed source, and one source said plainly (issue 15, item 4)."""

from __future__ import annotations

import json

from trainwise.cli.main import main


def _setup(tmp_path, sources_yaml, report_sources, source_kinds):
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    (tmp_path / "corpus.yaml").write_text(f"output: out\nsources:\n{sources_yaml}\nmixture: {{budget: 3k}}\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "report.json").write_text(json.dumps({"sources": report_sources, "source_kinds": source_kinds}))
    return str(tmp_path / "corpus.yaml")


def test_kind_preferences_act_inside_a_mixed_source(tmp_path, capsys):
    config = _setup(tmp_path, "  - {name: crawl, paths: [a.jsonl]}",
                    {"crawl": {"documents": 30, "tokens": 3000, "mean_preference_score": 1.2}},
                    {"crawl": {"book": {"documents": 10, "tokens": 1000}, "web": {"documents": 20, "tokens": 2000}}})
    assert main(["data", "mix", config, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    epochs = {row["name"]: row["epochs"] for row in plan["sources"]}
    assert set(epochs) == {"crawl/book", "crawl/web"}
    # trainwise preset: book 2.5, web 1.0 -> books are repeated 2.5 times as often as web pages
    assert abs(epochs["crawl/book"] / epochs["crawl/web"] - 2.5) < 1e-9
    assert abs(sum(row["tokens"] for row in plan["sources"]) - 3_000) < 1e-6


def test_one_source_is_said_plainly_not_infeasible(tmp_path, capsys):
    config = _setup(tmp_path, "  - {name: books, paths: [a.jsonl], kind: book}",
                    {"books": {"documents": 3, "tokens": 1000, "mean_preference_score": 2.5}},
                    {"books": {"book": {"documents": 3, "tokens": 1000}}})
    assert main(["data", "mix", config]) == 0
    out = capsys.readouterr().out
    assert "one source (books" in out and "nothing to mix" in out and "INFEASIBLE" not in out
    assert "3 epochs" in out and "epoch cap" not in out
