"""Bad input gets one clear line, never a traceback: hypothesis over `plan`'s options and damaged input files.

Every case must end in exit 0 (valid input) or exit 2 with one ``trainwise: error:`` line naming the file, line,
field or option; argparse's own refusals (exit 2, ``SystemExit``) name the option too. An exception escaping
``main`` is a bug in trainwise and fails the test.
"""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_plan import write_noise_jsonl
from trainwise.cli.main import main

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

numbers = st.one_of(st.integers(-10**6, 10**12).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.sampled_from(["0", "-1", "nan", "inf", "1e400", "20 parsecs", "", "3.5M tokens", "12k", "x"]))


def _run(argv, capsys, want_out: bool = False):
    """``(exit code, stderr)``, or ``(exit code, stderr, stdout)`` with ``want_out``."""
    capsys.readouterr()  # nothing left over from an earlier example that raised
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: names the option in its own message
        code = exc.code
    captured = capsys.readouterr()
    err = captured.err
    assert "Traceback" not in err and "internal error" not in err, (argv, err)
    return (code, err, captured.out) if want_out else (code, err)


def strict_json(text: str):
    """Parse ``text`` as strict JSON: ``NaN``/``Infinity`` fail."""
    def refuse(constant):
        raise AssertionError(f"not strict JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def log_path(tmp_path_factory):
    return write_noise_jsonl(tmp_path_factory.mktemp("fuzz") / "noise.jsonl", steps=40)


@FUZZ
@given(option=st.sampled_from(["--devices", "--seq-len", "--tokens", "--examples", "--throughput", "--params",
                               "--compute", "--window", "--optimizer"]), value=numbers)
def test_plan_options(log_path, capsys, option, value):
    code, err = _run(["plan", "--from", str(log_path), option, value], capsys)
    assert code in (0, 2)
    if code == 2:
        assert option in err or value in err or "seq-len" in err, (option, value, err)


def _damage(text: str, rng: random.Random) -> str:
    kind = rng.choice(["truncate", "drop_key", "bad_value", "garbage_line", "bytes", "wrong_type"])
    if kind == "truncate":
        return text[: rng.randrange(len(text))]
    if kind == "garbage_line":
        lines = text.splitlines()
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(["{", "[1, 2]", "null", "\"kind\"", "{\"kind\": 3}"]))
        return "\n".join(lines)
    if kind == "bytes":
        pos = rng.randrange(len(text))
        return text[:pos] + "\udcff" + text[pos:]
    # JSON-level damage on one record (noise.jsonl) or on the object (measure.json / sweep.json)
    lines = text.splitlines()
    if len(lines) > 1:
        index = rng.randrange(len(lines))
        record = json.loads(lines[index])
    else:
        index, record = None, json.loads(text)
    target = record
    for _ in range(rng.randrange(3)):  # walk into a nested object sometimes
        nested = [k for k, v in target.items() if isinstance(v, dict)]
        if not nested:
            break
        target = target[rng.choice(nested)]
    if not target:
        return text
    key = rng.choice(sorted(target))
    if kind == "drop_key":
        del target[key]
    elif kind == "bad_value":
        target[key] = rng.choice([None, -1, 0, "x", float("nan"), float("inf"), [], {}, True, 1e308])
    else:
        target[key] = rng.choice([[target[key]], {"value": target[key]}, str(target[key])])
    dumped = json.dumps(record)  # NaN/Infinity as Python writes them: readers must cope or refuse
    if index is None:
        return dumped
    lines[index] = dumped
    return "\n".join(lines)


def _measure_json() -> dict:
    return {"meta": {"task": "t", "batch_size": 32, "lr": 2e-3, "optimizer": "adamw", "unit": "tokens",
                     "tokens_per_example": 64, "steps": 100},
            "checkpoints": [{"step": 50, "loss": 2.5, "lr": 2e-3, "b_simple": {"value": 100, "stderr": 5}},
                            {"step": 100, "loss": 2.3, "lr": 2e-3, "b_simple": {"value": 140, "stderr": 5}}],
            "summary": {"window": {"first_step": 50, "last_step": 100, "checkpoints": 2},
                        "b_simple": {"value": 1200.0, "stderr": 10.0}, "b_noise": {"value": 600.0, "stderr": 6.0},
                        "eps_max": {"value": 0.1, "stderr": 0.01}}}


def _sweep_json() -> dict:
    return {"kind": "sweep", "config": {"task": "t", "optimizer": "sgd"},
            "fits": {"3.0": {"b_crit": 50.0, "b_crit_stderr": 5.0, "batch_sizes": [16, 64], "warnings": []}},
            "noise": {"per_batch_size": {"16": {"lr": 1e-3}, "64": {"lr": 2e-3}}, "targets": {}}}


@FUZZ
@given(which=st.sampled_from(["noise.jsonl", "measure.json", "sweep.json"]), seed=st.integers(0, 10**6))
def test_plan_from_damaged_files(tmp_path_factory, capsys, which, seed):
    rng = random.Random(seed)
    folder = tmp_path_factory.mktemp("damaged")
    if which == "noise.jsonl":
        text = write_noise_jsonl(folder / "clean.jsonl", steps=12, hessian={5: (1.0, 50.0)}).read_text()
    else:
        text = json.dumps(_measure_json() if which == "measure.json" else _sweep_json())
    path = folder / which
    path.write_text(_damage(text, rng), encoding="utf-8", errors="surrogateescape")
    code, err, out = _run(["plan", "--from", str(path), "--tokens", "1B", "--seq-len", "64", "--json"], capsys,
                          want_out=True)
    assert code in (0, 2)
    if code == 2:
        assert str(path) in err or which in err, err
    else:  # what it printed is strict JSON with a positive, finite recommendation
        plan = strict_json(out) if out else None
        if plan is not None:
            assert plan["recommendation"]["batch_size"] > 0 and math.isfinite(plan["b_crit"]["value"])


def test_missing_file_directory_and_permissions(tmp_path, capsys):
    code, err = _run(["plan", "--from", str(tmp_path / "nope.jsonl")], capsys)
    assert code == 2 and "nope.jsonl" in err
    code, err = _run(["plan", "--from", str(tmp_path)], capsys)  # a folder holding no measurement
    assert code == 2 and str(tmp_path) in err
    locked = write_noise_jsonl(tmp_path / "locked.jsonl", steps=5)
    locked.chmod(0)
    try:
        code, err = _run(["plan", "--from", str(locked)], capsys)
        assert code in (0, 2)  # root may read it anyway; otherwise one line naming the file
        if code == 2:
            assert "locked.jsonl" in err
    finally:
        locked.chmod(0o644)
