"""Whole flows (monitor → plan, measure → plan, sweep → plan → report) against independent truth, in both units.

The truth is the closed form of a linear-regression problem held at fixed parameters (``lr = 0``), so every step
measures the same ``|G|²`` and ``tr(Σ)`` (tests/noise/helpers.py), and the same run logged in the other unit:
a run logged in tokens with ``T`` tokens per example must print ``T×`` the batch sizes of the run logged in
examples, and the same learning rate, steps and tokens. Last wave's unit bug (the plan multiplying a
token-unit log by ``T`` a second time) passed tests whose fixtures were written in examples; these cannot.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from tests.noise.helpers import LinearRegressionProblem
from trainwise.calibration import best_predictor
from trainwise.cli.main import main
from trainwise.noise import NoiseScaleMonitor
from trainwise.optim.lr_scaling import noise_scale_lr_ratio
from trainwise.plan import format_plan, make_plan, read_measurement
from trainwise.tasks.base import Task

T = 64  # tokens per example of the token-unit runs
BATCH = 32
LR = 0.01  # the nominal learning rate the log records (the parameters are held fixed)


def _problem() -> LinearRegressionProblem:
    return LinearRegressionProblem([4.0, 2.0, 1.0, 0.5, 0.25, 0.1], sigma=0.5, seed=3)


def _monitor_log(path, tokens_per_example, steps=240):
    """The monitor over ``steps`` steps at fixed parameters (per-example source), logged to ``path``."""
    problem = _problem()
    model = problem.model()
    monitor = NoiseScaleMonitor(model, source="per_example", tokens_per_example=tokens_per_example, log_path=path,
                                meta={"optimizer": "sgd"})
    for _ in range(steps):
        model.zero_grad(set_to_none=True)
        batch = problem.batch(BATCH)
        problem.loss_fn(model, batch).mean().backward()
        monitor.step(batch_size=BATCH, lr=LR, loss=1.0)
    monitor.close()
    return problem.truth


def _cli_json(capsys, *argv) -> dict:
    assert main(list(argv) + ["--json"]) == 0
    text = capsys.readouterr().out
    assert "NaN" not in text and "Infinity" not in text
    return json.loads(text)


def test_monitor_to_plan_in_examples_and_tokens(tmp_path, capsys):
    truth = _monitor_log(tmp_path / "ex.jsonl", None)
    _monitor_log(tmp_path / "tok.jsonl", T)
    ex, tok = read_measurement(tmp_path / "ex.jsonl"), read_measurement(tmp_path / "tok.jsonl")
    # independent truth: the closed-form B_simple (constant over the run, so every weighting gives it)
    value, stderr = ex.b_simple["value"], ex.b_simple["stderr"]
    assert abs(value - truth["b_simple"]) < 4 * stderr and abs(value / truth["b_simple"] - 1) < 0.1
    # the same run in tokens: T× every batch-size quantity, to rounding
    assert tok.unit == "tokens" and ex.unit == "examples"
    assert tok.b_simple["value"] == pytest.approx(T * value, rel=1e-9)
    assert tok.b_simple["stderr"] == pytest.approx(T * stderr, rel=1e-9)

    plan_ex = _cli_json(capsys, "plan", "--from", str(tmp_path / "ex.jsonl"), "--tokens", "20M", "--seq-len", str(T),
                        "--throughput", "5000tok/s")
    plan_tok = _cli_json(capsys, "plan", "--from", str(tmp_path / "tok.jsonl"), "--tokens", "20M",
                         "--throughput", "5000tok/s")
    rec_ex, rec_tok = plan_ex["recommendation"], plan_tok["recommendation"]
    # B_crit: the calibrated predictor for SGD applied to the closed-form reading
    name, calib = best_predictor("sgd", {"b_simple"})
    assert name == "b_simple"
    assert plan_ex["b_crit"]["value"] == pytest.approx(value / calib.geometric_mean, rel=1e-9)
    assert plan_tok["b_crit"]["value"] == pytest.approx(T * plan_ex["b_crit"]["value"], rel=1e-9)
    assert rec_tok["batch_tokens"] == pytest.approx(rec_ex["batch_tokens"])
    assert rec_tok["batch_examples"] == pytest.approx(rec_ex["batch_size"])
    # learning rate: the measured lr at B = 32 moved by ε_opt(B) ∝ 1/(1 + B_n/B), computed here by hand
    b_crit = plan_ex["b_crit"]["value"]
    b_rec = rec_ex["batch_size"]
    expected_lr = LR * (1 + b_crit / BATCH) / (1 + b_crit / b_rec)
    assert rec_ex["lr"] == pytest.approx(expected_lr, rel=1e-9)
    assert rec_tok["lr"] == pytest.approx(expected_lr, rel=1e-9)
    # the trade-off table to the same 20M-token budget: same steps, tokens and hours in both units
    for row_ex, row_tok in zip(plan_ex["table"], plan_tok["table"]):
        assert row_tok["batch_size"] == pytest.approx(T * row_ex["batch_size"])
        for key in ("steps", "tokens", "examples", "wall_clock_h"):
            assert row_tok[key] == pytest.approx(row_ex[key], rel=1e-9), key
    recommended = next(r for r in plan_ex["table"] if r["recommended"])
    # at B = B_crit the tokens are twice the minimum, and they add up to the budget by construction
    assert recommended["tokens"] == pytest.approx(20e6, rel=1e-9)
    # the printed text agrees with the JSON
    assert main(["plan", "--from", str(tmp_path / "tok.jsonl"), "--tokens", "20M"]) == 0
    text = capsys.readouterr().out
    assert f"Recommended global batch: {_short(rec_tok['batch_size'])} tokens" in text


def _short(value: float) -> str:
    from trainwise.plan.format import fmt_quantity

    return fmt_quantity(value)


def test_a_token_budget_on_an_examples_log_needs_the_sequence_length(tmp_path, capsys):
    _monitor_log(tmp_path / "ex.jsonl", None, steps=20)
    assert main(["plan", "--from", str(tmp_path / "ex.jsonl"), "--tokens", "50M"]) == 2
    err = capsys.readouterr().err
    assert "--seq-len" in err and "--tokens" in err and "Traceback" not in err
    assert main(["plan", "--from", str(tmp_path / "ex.jsonl"), "--throughput", "9000tok/s"]) == 2
    assert "--seq-len" in capsys.readouterr().err
    # a sequence length that contradicts a token log is refused, not silently overridden
    _monitor_log(tmp_path / "tok.jsonl", T, steps=20)
    assert main(["plan", "--from", str(tmp_path / "tok.jsonl"), "--seq-len", "128"]) == 2
    assert "tokens_per_example" in capsys.readouterr().err


class ClosedFormTask(Task):
    """The linear-regression problem as a trainwise Task; with ``lr = 0`` its noise scale is the closed form."""

    name = "closed-form"
    default_lr = 0.0
    default_batch_size = BATCH
    default_optimizer = "sgd"

    def __init__(self, device="cpu", tokens_per_example=None):
        super().__init__(device)
        self.problem = _problem()
        self.tokens_per_example = tokens_per_example
        self._eval = self.problem.batch(256)

    def make_model(self, seed=0):
        return self.problem.model()

    def loss_fn(self, model, batch):
        return LinearRegressionProblem.loss_fn(model, batch)

    def num_train_examples(self):
        return 10**9

    def sample_batch(self, batch_size, generator, split="train"):
        p = self.problem
        z = torch.randn(batch_size, p.dim, generator=generator, dtype=torch.float64)
        x = z @ torch.tensor(p.chol.T)
        y = x @ torch.tensor(p.w_star) + p.sigma * torch.randn(batch_size, generator=generator, dtype=torch.float64)
        return x, y

    def eval_batches(self):
        return [self._eval]


def test_measure_to_plan_in_examples_and_tokens(tmp_path):
    from trainwise.noise.run import run_measurement

    runs = {}
    for unit, tpe in (("examples", None), ("tokens", T)):
        task = ClosedFormTask(tokens_per_example=tpe)
        runs[unit] = run_measurement(task, steps=60, checkpoints=3, rounds=48, measure_batch_size=64, unit=unit,
                                     out_dir=tmp_path / unit, show_progress=False)
    truth = ClosedFormTask().problem.truth
    ex, tok = runs["examples"]["summary"], runs["tokens"]["summary"]
    for name in ("b_simple", "b_noise"):
        # independent truth: the closed form, within 4 standard errors and 15%
        assert abs(ex[name]["value"] - truth[name]) < 4 * ex[name]["stderr"], name
        assert abs(ex[name]["value"] / truth[name] - 1) < 0.15, name
        assert tok[name]["value"] == pytest.approx(T * ex[name]["value"], rel=1e-9), name
    assert tok["eps_max"]["value"] == pytest.approx(ex["eps_max"]["value"], rel=1e-9)
    assert abs(ex["eps_max"]["value"] / truth["eps_max"] - 1) < 0.15
    assert tok["b_simple_monitor"]["value"] == pytest.approx(T * ex["b_simple_monitor"]["value"], rel=1e-9)
    assert abs(ex["b_simple_monitor"]["value"] / truth["b_simple"] - 1) < 0.15
    plans = {u: make_plan(read_measurement(tmp_path / u), tokens=1e7, seq_len=T if u == "examples" else None)
             for u in runs}
    assert plans["tokens"]["b_crit"]["value"] == pytest.approx(T * plans["examples"]["b_crit"]["value"], rel=1e-9)
    assert plans["tokens"]["recommendation"]["batch_tokens"] == plans["examples"]["recommendation"]["batch_tokens"]
    text = format_plan(plans["tokens"])
    assert "tokens" in text and "nan" not in text.lower()
    # the report of each run: its recommended batch and B_crit, read back from the page, agree across units
    from trainwise._io import write_json
    from trainwise.report.html import write_report

    pages = {}
    for unit, plan in plans.items():
        write_json(tmp_path / unit / "plan" / "plan.json", plan)
        pages[unit] = write_report([tmp_path / unit, tmp_path / unit / "plan"], tmp_path / f"{unit}.html").read_text()
    batch = {u: _kpi(page, "recommended batch") for u, page in pages.items()}
    assert batch["tokens"] == pytest.approx(T * batch["examples"], rel=0.01)
    b_simple = {u: _kpi(page, "B_simple") for u, page in pages.items()}
    assert b_simple["tokens"] == pytest.approx(T * b_simple["examples"], rel=0.01)


def _kpi(page: str, label: str) -> float:
    """The number a report shows under a KPI label (``1.23k`` style), as a float."""
    import re

    match = re.search(re.escape(label) + r"[^<]*<b>([0-9.]+)([kMBT]?)", page)
    assert match, label
    return float(match.group(1)) * {"": 1, "k": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[match.group(2)]


def test_sweep_to_plan_to_report(tmp_path, capsys):
    """A stored sweep: the plan's B_crit is the fit's, its LR the tuned LRs interpolated log–log (by hand here)."""
    sweep = {
        "kind": "sweep",
        "config": {"task": "proxy", "optimizer": "adamw", "batch_sizes": [16, 64, 256], "targets": [3.0, 2.9]},
        "fits": {"3.0": {"b_crit": 50.0, "b_crit_stderr": 5.0, "batch_sizes": [16, 64, 256], "warnings": []},
                 "2.9": {"b_crit": 90.0, "b_crit_stderr": 9.0, "batch_sizes": [16, 64, 256], "warnings": []}},
        "noise": {"per_batch_size": {"16": {"lr": 1e-3}, "64": {"lr": 2e-3}, "256": {"lr": 2.5e-3}},
                  "targets": {"2.9": {"b_simple": {"value": 80.0}}}},
        "notes": [],
    }
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(sweep))
    plan = _cli_json(capsys, "plan", "--from", str(path), "--out", str(tmp_path / "plan"))
    assert plan["b_crit"]["value"] == 90.0 and plan["b_crit"]["predictor"] == "swept"
    assert plan["recommendation"]["batch_size"] == 90
    # log–log interpolation between (64, 2e-3) and (256, 2.5e-3) at 90
    frac = math.log(90 / 64) / math.log(256 / 64)
    assert plan["recommendation"]["lr"] == pytest.approx(math.exp(math.log(2e-3) + frac * math.log(2.5e-3 / 2e-3)))
    assert (tmp_path / "plan" / "plan.json").exists()
    assert main(["report", str(tmp_path / "plan"), "-o", str(tmp_path / "report.html")]) == 0
    html = (tmp_path / "report.html").read_text()
    assert "90" in html and "sweep" in html


def test_noise_scale_lr_ratio_reduces_to_the_linear_rule_far_below_the_noise_scale():
    assert noise_scale_lr_ratio(4, 2, 1e9) == pytest.approx(2.0, rel=1e-6)
    assert noise_scale_lr_ratio(4e9, 2e9, 1.0) == pytest.approx(1.0, rel=1e-6)
