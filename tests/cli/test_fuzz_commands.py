"""The fuzz suite of ``test_fuzz_cli.py`` over the other commands: ``measure``, ``sweep`` (options and a damaged
``sweep_state.json``), ``report`` (damaged measure/plan/sweep/branched JSON), ``compare-optimizers`` and
``data stats``/``data sft``/``data curate`` (damaged JSONL, .gz and Parquet-like inputs, config YAML).

Every case ends in exit 0 or in exit 2 with one ``trainwise: error:`` line (argparse's own refusals: exit 2 naming
the option) that names the file, the line, the field or the option; an exception escaping ``main`` fails the test.
Training runs use a tiny linear-regression task file and a few steps, so the suite stays fast.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cli.test_fuzz_cli import _damage, _run, strict_json
from tests.test_plan import write_noise_jsonl
from trainwise.cli.main import main

FAST = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

#: option values: small whole numbers (a valid one trains for a few steps only), and things that are not numbers
values = st.one_of(st.integers(-3, 6).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                   st.sampled_from(["0", "-1", "1", "nan", "inf", "-inf", "1e400", "", "x", "3.5", "12k", "1,2",
                                    "2..8", "0..4", "4..2", "2..8x1", "-2,4"]))


def _named(code: int, err: str, *names: str) -> None:
    assert code in (0, 2), (code, err)
    if code == 2:
        assert any(name in err for name in names), (names, err)


@pytest.fixture(scope="module")
def task_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("task") / "lin_task.py"
    path.write_text("import sys\nsys.path.insert(0, %r)\nfrom linear_task import LinearRegression\n"
                    "def make_task(device='cpu'):\n    return LinearRegression(device=device)\n"
                    % str(Path(__file__).parents[1] / "sweep"))
    return path


# ---- measure ---------------------------------------------------------------------------------------------------

@FAST
@given(option=st.sampled_from(["--steps", "--batch-size", "--lr", "--micro-batches", "--checkpoints", "--rounds",
                               "--rel-err", "--max-rounds", "--measure-batch-size", "--seed"]), value=values)
def test_measure_options(task_file, tmp_path_factory, capsys, option, value):
    out = tmp_path_factory.mktemp("measure")
    argv = ["measure", "--task", str(task_file), "--steps", "3", "--checkpoints", "2", "--rounds", "2",
            "--max-rounds", "8", "--no-plot", "--quiet", "--json", "--out", str(out), option, value]
    if option == "--micro-batches":
        argv += ["--source", "accumulation"]
    code, err, printed = _run(argv, capsys, want_out=True)
    _named(code, err, option)
    if code == 0:
        assert strict_json(printed)["meta"]["steps"] >= 1
        assert strict_json((out / "measure.json").read_text())["meta"]["steps"] >= 1


# ---- sweep -----------------------------------------------------------------------------------------------------

_SWEEP = ["--batch-sizes", "2,4", "--lrs", "0.01,0.1", "--targets", "1.0,0.5", "--max-steps", "4", "--optimizer", "sgd",
          "--no-hessian", "--no-plot", "--quiet", "--json", "--noise-source", "halves"]


@FAST
@given(option=st.sampled_from(["--batch-sizes", "--targets", "--lrs", "--lr-factors", "--base-lr", "--base-batch",
                               "--max-steps", "--max-examples", "--probe-rounds", "--probe-checkpoints", "--optimizer"]),
       value=values)
def test_sweep_options(task_file, tmp_path_factory, capsys, option, value):
    out = tmp_path_factory.mktemp("sweep")
    argv = ["sweep", "--task", str(task_file), *_SWEEP, "--out", str(out), option, value]
    if option in ("--lr-factors", "--base-lr", "--base-batch"):  # these shape the LR rule, not an explicit grid
        argv.remove("--lrs")
        argv.remove("0.01,0.1")
    code, err, printed = _run(argv, capsys, want_out=True)
    _named(code, err, option, option.lstrip("-").replace("-", "_"))
    if code == 0:
        assert strict_json(printed)["kind"] == "sweep"


@FAST
@given(option=st.sampled_from(["--base-steps", "--multipliers", "--branch-examples", "--tolerance", "--base-batch",
                               "--lr-factors"]), value=values)
def test_branched_options(task_file, tmp_path_factory, capsys, option, value):
    out = tmp_path_factory.mktemp("branched")
    argv = ["sweep", "--branched", "--task", str(task_file), "--base-steps", "0,2", "--multipliers", "1,2",
            "--branch-examples", "16", "--base-batch", "2", "--no-plot", "--quiet", "--json", "--out", str(out),
            option, value]
    code, err = _run(argv, capsys)
    _named(code, err, option, option.lstrip("-").replace("-", "_"))


@pytest.fixture(scope="module")
def sweep_state(task_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep-state")
    assert main(["sweep", "--task", str(task_file), *_SWEEP, "--out", str(out)]) == 0
    return out


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6))
def test_sweep_resumes_from_damaged_state(task_file, sweep_state, tmp_path_factory, capsys, seed):
    out = tmp_path_factory.mktemp("damaged-sweep")
    shutil.copytree(sweep_state, out, dirs_exist_ok=True)
    state = out / "sweep_state.json"
    state.write_text(_deep_damage(json.dumps(json.loads(state.read_text())), random.Random(seed)),
                     encoding="utf-8", errors="surrogateescape")
    code, err = _run(["sweep", "--task", str(task_file), *_SWEEP, "--out", str(out)], capsys)
    _named(code, err, "sweep_state.json")


def _deep_damage(text: str, rng: random.Random) -> str:
    """Damage one value anywhere in a JSON document, walking into lists (table rows, checkpoints) as well."""
    if rng.random() < 0.4:
        return _damage(text, rng)
    data = json.loads(text)
    parent, key = None, None
    node = data
    for _ in range(rng.randrange(1, 6)):
        keys = list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
        if not keys:
            break
        parent, key = node, rng.choice(keys)
        node = node[key]
    if parent is None:
        return text
    if rng.random() < 0.3 and isinstance(parent, dict):
        del parent[key]
    else:
        parent[key] = rng.choice([None, -1, 0, "x", float("nan"), float("inf"), [], {}, True, 1e308, [node], {"v": node}])
    return json.dumps(data)


# ---- report ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def results(task_file, sweep_state, tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("results")
    noise = write_noise_jsonl(root / "noise.jsonl", steps=40)
    assert main(["plan", "--from", str(noise), "--tokens", "1B", "--out", str(root / "plan")]) == 0
    assert main(["measure", "--task", str(task_file), "--steps", "4", "--checkpoints", "2", "--rounds", "2",
                 "--no-plot", "--quiet", "--json", "--out", str(root / "measure")]) == 0
    branched = {"kind": "branched", "method": "branched", "config": {"task": "t"},
                "checkpoints": [{"step": 0, "examples": 0, "loss": 2.0, "b_crit": 4, "capped": False},
                                {"step": 10, "examples": 40, "loss": 1.0, "b_crit": 8, "capped": True}]}
    (root / "branched.json").write_text(json.dumps(branched))
    texts = {name: (root / name).read_text() for name in ("plan/plan.json", "measure/measure.json", "branched.json")}
    texts["sweep.json"] = (sweep_state / "sweep.json").read_text()
    return texts


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(which=st.sampled_from(["plan/plan.json", "measure/measure.json", "sweep.json", "branched.json"]),
       seed=st.integers(0, 10**6))
def test_report_from_damaged_results(results, tmp_path_factory, capsys, which, seed):
    folder = tmp_path_factory.mktemp("report")
    data = json.loads(results[which])
    data.pop("files", None)  # no plot to redraw: the section's own reading is what is fuzzed
    path = folder / Path(which).name
    path.write_text(_deep_damage(json.dumps(data), random.Random(seed)), encoding="utf-8", errors="surrogateescape")
    code, err = _run(["report", str(path), "-o", str(folder / "report.html")], capsys)
    _named(code, err, path.name)


# ---- compare-optimizers ----------------------------------------------------------------------------------------

@FAST
@given(option=st.sampled_from(["--steps", "--batch-size", "--eval-every", "--lr", "--optimizers", "--seed"]),
       value=values)
def test_compare_optimizers_options(task_file, tmp_path_factory, capsys, option, value):
    out = tmp_path_factory.mktemp("compare")
    if option == "--lr":
        value = f"adamw={value}"
    argv = ["compare-optimizers", "--task", str(task_file), "--optimizers", "adamw", "--steps", "3", "--quiet",
            "--json", "--out", str(out), "--no-plot", option, value]
    code, err, printed = _run(argv, capsys, want_out=True)
    _named(code, err, option)
    if code == 0:
        assert strict_json(printed)["results"] and strict_json((out / "results.json").read_text())["results"]


# ---- data stats / sft / curate ---------------------------------------------------------------------------------

def _documents() -> str:
    return "\n".join(json.dumps({"text": f"Document {i} talks about rivers and the mountains they cut. " * 3,
                                 "id": str(i), "source": "web"}) for i in range(6)) + "\n"


def _damage_jsonl(text: str, rng: random.Random) -> bytes:
    """JSON-level damage (``_damage``) or byte-level: a non-UTF-8 byte, a cut-off line, a deep nest."""
    kind = rng.choice(["json", "json", "byte", "nest", "empty"])
    if kind == "json":
        return _damage(text, rng).encode("utf-8", errors="surrogateescape")
    data = text.encode()
    if kind == "byte":
        pos = rng.randrange(len(data))
        return data[:pos] + bytes([rng.choice([0xff, 0xc3, 0x80, 0xfe])]) + data[pos:]
    if kind == "nest":
        return data + b"[" * 100_000 + b"\n"
    return b""


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), packing=st.sampled_from(["jsonl", "gz", "truncated-gz", "parquet-like"]))
def test_data_stats_on_damaged_inputs(tmp_path_factory, capsys, seed, packing):
    folder = tmp_path_factory.mktemp("stats")
    raw = _damage_jsonl(_documents(), random.Random(seed))
    if packing == "jsonl":
        path = folder / "docs.jsonl"
        path.write_bytes(raw)
    elif packing == "parquet-like":  # a file named .parquet that is not one
        path = folder / "docs.parquet"
        path.write_bytes(raw[: random.Random(seed).randrange(len(raw) + 1)] if raw else b"PAR1")
    else:
        path = folder / "docs.jsonl.gz"
        packed = gzip.compress(raw)
        path.write_bytes(packed[: len(packed) // 2] if packing == "truncated-gz" else packed)
    code, err, out = _run(["data", "stats", str(path), "--json"], capsys, want_out=True)
    _named(code, err, path.name)
    if code == 0:
        summary = strict_json(out)
        assert sum(s["documents"] for s in summary["sources"].values()) + len(summary["skipped"]) >= 1


_SFT_ROWS = [{"question": f"What is {a} plus {b} for the {t}?", "answer": f"{a} + {b} = {a + b}."}
             for a, b, t in zip(range(1, 9), range(20, 28), ["cats", "dogs", "bees", "tea", "trains", "chess", "bread", "music"])]


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), skip=st.booleans(), gz=st.booleans())
def test_data_sft_on_damaged_inputs(tmp_path_factory, capsys, seed, skip, gz):
    folder = tmp_path_factory.mktemp("sft")
    raw = _damage_jsonl("\n".join(json.dumps(r) for r in _SFT_ROWS) + "\n", random.Random(seed))
    path = folder / ("train.jsonl.gz" if gz else "train.jsonl")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    evals = folder / "eval.jsonl"
    evals.write_bytes(_damage_jsonl(json.dumps(_SFT_ROWS[0]) + "\n" + json.dumps(_SFT_ROWS[1]) + "\n",
                                    random.Random(seed + 1)))
    argv = ["data", "sft", str(path), "--eval", str(evals), "--embed", "tfidf", "--quiet", "--json"]
    code, err, out = _run(argv + (["--skip-bad-lines"] if skip else []), capsys, want_out=True)
    _named(code, err, path.name, evals.name)
    if code == 0:  # strict JSON, and every skipped line listed on stderr
        report = strict_json(out)
        for bad in report["load"]["skipped"][:20]:
            assert f"{bad['path']}:{bad['line']}" in err, (bad, err)


@FAST
@given(option=st.sampled_from(["--k", "--clusters", "--min-prompt-words", "--max-response-words", "--near-threshold",
                               "--decontam-ngram", "--decontam-overlap", "--min-quality", "--temperature", "--cap",
                               "--deita-threshold", "--ifd-batch-size"]), value=values)
def test_data_sft_options(tmp_path_factory, capsys, option, value):
    path = tmp_path_factory.mktemp("sft-options") / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in _SFT_ROWS) + "\n")
    code, err = _run(["data", "sft", str(path), "--embed", "tfidf", "--quiet", "--json", option, value], capsys)
    _named(code, err, option)


_CONFIG = {"output": "out", "sources": [{"name": "web", "paths": ["docs.jsonl"], "max_epochs": 2.0}],
           "workers": 1, "filters": {"gopher_quality": {"min_doc_words": 5}, "min_words": 3},
           "dedup": {"enabled": True, "threshold": 0.8, "n_grams": 5}, "dsir": {"num_buckets": 100},
           "mixture": {"budget": "1M", "max_epochs": 4.0}}


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6))
def test_data_curate_config_damage(tmp_path_factory, capsys, monkeypatch, seed):
    """A damaged corpus.yaml is refused at load, naming the file and the key; one that still loads reaches the
    pipeline (stubbed here: the pipeline has its own tests)."""
    pytest.importorskip("yaml")
    import importlib

    pipeline = importlib.import_module("trainwise.data.pretrain.pipeline")  # the module data curate imports from

    folder = tmp_path_factory.mktemp("curate")
    (folder / "docs.jsonl").write_text(_documents())
    config = folder / "corpus.yaml"
    rng = random.Random(seed)
    text = _damage(json.dumps(_CONFIG), rng)  # JSON is YAML
    if rng.random() < 0.3:  # a misspelt key somewhere
        data = json.loads(json.dumps(_CONFIG))
        section = rng.choice(["", "filters", "dedup", "dsir", "mixture", "gopher"])
        target = (data if not section else data["filters"]["gopher_quality"] if section == "gopher" else data[section])
        target["mispelt_key"] = 1
        text = json.dumps(data)
    config.write_text(text, encoding="utf-8", errors="surrogateescape")
    reached = []
    monkeypatch.setattr(pipeline, "run_curate", lambda *a, **k: reached.append(a) or (_ for _ in ()).throw(
        pipeline.EmptyRunError("stub: the pipeline is not run here")))
    code, err = _run(["data", "curate", str(config)], capsys)
    assert code in (1, 2), err
    if code == 2:
        assert "corpus.yaml" in err and not reached, err
    else:
        assert reached and "mispelt_key" not in text
