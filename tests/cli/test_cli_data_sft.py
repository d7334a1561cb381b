import json

from trainwise.cli.main import main

_TOPICS = ["cats", "dogs", "rivers", "mountains", "volcanoes", "bread", "trains", "planets", "chess", "music", "tea", "bees"]


def _files(tmp_path):
    math = tmp_path / "math.jsonl"
    rows = [{"question": f"What is {a} plus {b} when counting {t}?", "answer": f"{a} + {b} = {a + b}. The answer is {a + b}."}
            for a, b, t in zip(range(1, 30), range(40, 69), _TOPICS * 3)]
    rows.append(dict(rows[0]))  # exact duplicate
    math.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    chat = tmp_path / "chat.jsonl"
    lines = [json.dumps({"messages": [{"role": "user", "content": f"Write a short poem about {t}."},
                                      {"role": "assistant", "content": f"Oh {t}, you are grand; I sing of you across the land."}]})
             for t in _TOPICS]
    lines.append(json.dumps({"messages": [{"role": "user", "content": "Explain tides"}, {"role": "assistant", "content": ""}]}))
    lines.append("{not json")
    chat.write_text("\n".join(lines) + "\n")
    evals = tmp_path / "eval.jsonl"
    evals.write_text(json.dumps({"question": "Write a short poem about bees.", "answer": "x"}) + "\n")
    return math, chat, evals


def test_bad_line_is_an_error_naming_file_and_line(tmp_path, capsys):
    math, chat, _ = _files(tmp_path)
    code = main(["data", "sft", str(math), str(chat), "--embed", "tfidf"])
    assert code == 2
    assert "chat.jsonl:14: invalid JSON" in capsys.readouterr().err


def test_end_to_end_writes_selection_and_report(tmp_path, capsys):
    math, chat, evals = _files(tmp_path)
    out = tmp_path / "out"
    code = main(["data", "sft", f"arith={math}", str(chat), "--eval", str(evals), "--k", "12", "--select", "kcenter",
                 "--embed", "tfidf", "--skip-bad-lines", "--mix", "temperature", "--temperature", "2", "--out", str(out), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["load"]["skipped"][0]["line"] == 14
    counts = report["dropped"]["counts"]
    assert counts["exact_duplicate"] == 1 and counts["empty_response"] == 1 and counts["contaminated"] == 1
    assert report["decontamination"]["collisions"][0]["source"].endswith("chat.jsonl:12")
    assert report["decontamination"]["collisions"][0]["eval_source"].endswith("eval.jsonl:1")
    assert report["selection"]["k"] == 12
    selected = [json.loads(line) for line in (out / "selected.jsonl").read_text().splitlines()]
    assert len(selected) == 12
    tasks = {row["task"]: row for row in report["mixture"]["tasks"]}
    assert set(tasks) <= {"arith", "chat"}
    assert abs(sum(row["rate"] for row in tasks.values()) - 1) < 1e-9
    scores = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert sum(row["selected"] for row in scores) == 12 and {"quality", "complexity", "cluster"} <= set(scores[0])
    dropped = (out / "dropped.jsonl").read_text().splitlines()
    assert len(dropped) == sum(counts.values())
    md = (out / "report.md").read_text()
    assert "## Dropped, per reason" in md and "## Per-task mix" in md and "## Coverage" in md


def test_table_output(tmp_path, capsys):
    math, chat, _ = _files(tmp_path)
    code = main(["data", "sft", str(math), "--embed", "tfidf"])
    assert code == 0
    text = capsys.readouterr().out
    assert "| exact_duplicate | 1 |" in text and "| math |" in text


def test_allocate_quota_properties():
    from trainwise.data.sft.report import allocate

    assert allocate(10, [100, 100], [0.5, 0.5]) == [5, 5]
    assert allocate(10, [2, 100], [0.5, 0.5]) == [2, 8]  # the small task's excess moves to the other
    assert allocate(1000, [3, 4], [0.9, 0.1]) == [3, 4]  # k above the pool: everything
    quota = allocate(97, [500, 80, 30, 7], [0.4, 0.3, 0.2, 0.1])
    assert sum(quota) == 97 and quota[3] == 7 and all(q <= s for q, s in zip(quota, [500, 80, 30, 7]))


def test_per_task_selection_follows_the_mix(tmp_path, capsys):
    math, chat, _ = _files(tmp_path)
    code = main(["data", "sft", str(math), str(chat), "--k", "10", "--per-task", "--mix", "equal", "--embed", "tfidf",
                 "--skip-bad-lines", "--json", "--quiet"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert {row["task"]: row["examples"] for row in report["mixture"]["tasks"]} == {"chat": 5, "math": 5}
