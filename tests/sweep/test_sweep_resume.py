"""A resumed sweep never mixes settings: larger caps retrain the capped runs, probe settings re-measure the probes,
anything else that changes results is refused naming the option, the saved and the new value."""

import json

import pytest

from trainwise.experiments.sweep import run_sweep, train_to_targets
from trainwise.sweep import SweepConfig

from .linear_task import LinearRegression


def _config(**overrides) -> SweepConfig:
    kwargs = dict(task="linreg", batch_sizes=[2, 16], targets=[0.6, 0.3], lrs=[0.003, 0.1], max_steps=15,
                  optimizer="sgd")
    kwargs.update(overrides)
    return SweepConfig(**kwargs)


def _counting(done: list):
    def train_run(task, batch_size, lr, *args, **kwargs):
        done.append((batch_size, lr, kwargs["max_steps"]))
        return train_to_targets(task, batch_size, lr, *args, **kwargs)
    return train_run


def test_a_larger_step_cap_retrains_the_capped_runs_only(tmp_path):
    task, done, logs = LinearRegression(), [], []
    first = run_sweep(task, _config(), tmp_path, show_progress=False, train_run=_counting(done))
    capped = sorted(k for k, r in first.runs.items() if r.stopped == "step_cap")
    assert capped and len(capped) < len(first.runs), "the setting must cap some runs and not others"
    done.clear()
    second = run_sweep(task, _config(max_steps=400), tmp_path, show_progress=False, train_run=_counting(done),
                       log=logs.append)
    assert sorted(f"B{b}_lr{lr:.6g}" for b, lr, _ in done) == capped
    assert all(cap == 400 for _, _, cap in done)
    assert any("retraining 2 run(s)" in line or "larger cap" in line for line in logs), logs
    state = json.loads((tmp_path / "sweep_state.json").read_text())
    assert state["config"]["max_steps"] == 400 and second.config.max_steps == 400
    for key, run in state["runs"].items():  # no saved run is capped below what the config says
        assert run["stopped"] != "step_cap" or run["final_step"] == 400, key
    # the same cap again: nothing retrained
    done.clear()
    run_sweep(task, _config(max_steps=400), tmp_path, show_progress=False, train_run=_counting(done))
    assert done == []


def test_a_smaller_cap_that_a_saved_run_passed_is_refused(tmp_path):
    task = LinearRegression()
    run_sweep(task, _config(max_steps=60), tmp_path, show_progress=False)
    with pytest.raises(ValueError, match=r"--max-steps was 60, now 5"):
        run_sweep(task, _config(max_steps=5), tmp_path, show_progress=False)


@pytest.mark.parametrize("change, message", [
    ({"seed": 1}, "--seed (seed) was 0, now 1"),
    ({"targets": [0.6, 0.2]}, "--targets (targets) was [0.6, 0.3], now [0.6, 0.2]"),
    ({"noise_checkpoints": 3}, "--probe-checkpoints (noise_checkpoints) was 8, now 3"),
    ({"noise_source": "monitor"}, "--noise-source (noise_source) was 'halves', now 'monitor'"),
])
def test_other_settings_that_change_results_are_refused_by_name(tmp_path, change, message):
    task = LinearRegression()
    run_sweep(task, _config(max_steps=5), tmp_path, show_progress=False)
    with pytest.raises(ValueError) as info:
        run_sweep(task, _config(max_steps=5, **change), tmp_path, show_progress=False)
    assert message in str(info.value)


def test_changed_probe_rounds_measure_the_probes_again(tmp_path):
    task, calls, logs = LinearRegression(), [], []

    def probe(rounds):
        def measure(model, task_, step):
            calls.append(rounds)
            return {"b_noise": {"value": float(rounds), "stderr": 1.0},
                    "trace_h_sigma": {"value": 2.0 * rounds, "stderr": 0.0}, "ghg": {"value": 2.0, "stderr": 0.0}}
        measure.settings = {"batch_size": 64, "rounds": rounds, "seed": 1}
        return measure

    config = _config(max_steps=40)
    run_sweep(task, config, tmp_path, noise_measure=probe(16), show_progress=False)
    assert set(calls) == {16}
    calls.clear()
    run_sweep(task, config, tmp_path, noise_measure=probe(16), show_progress=False)
    assert calls == []  # same settings: reused
    result = run_sweep(task, config, tmp_path, noise_measure=probe(4), show_progress=False, log=logs.append)
    assert calls and set(calls) == {4}
    assert any("rounds 16 -> 4" in line for line in logs), logs
    assert result.noise["b_noise"]["value"] == pytest.approx(4.0)
    assert json.loads((tmp_path / "sweep_state.json").read_text())["noise_probe_settings"]["rounds"] == 4


def test_cli_rerun_with_a_larger_cap_and_a_changed_seed(tmp_path, capsys):
    from pathlib import Path

    from trainwise.cli.main import main

    task_file = tmp_path / "lin_task.py"
    task_file.write_text("import sys\nsys.path.insert(0, %r)\nfrom linear_task import LinearRegression\n"
                         "def make_task(device='cpu'):\n    return LinearRegression(device=device)\n"
                         % str(Path(__file__).parent))
    out = tmp_path / "sweep"
    args = ["sweep", "--task", str(task_file), "--batch-sizes", "2,16", "--targets", "0.6,0.3", "--lrs", "0.003,0.1",
            "--optimizer", "sgd", "--no-hessian", "--no-plot", "--quiet", "--noise-source", "halves", "--out", str(out)]
    assert main(args + ["--max-steps", "15"]) == 0
    capped = [r for r in json.loads((out / "sweep.json").read_text())["runs"].values() if r["stopped"] == "step_cap"]
    assert capped and all(r["final_step"] == 15 for r in capped)
    capsys.readouterr()
    assert main(args + ["--max-steps", "400"]) == 0
    assert "retraining" in capsys.readouterr().out
    saved = json.loads((out / "sweep.json").read_text())
    assert saved["config"]["max_steps"] == 400
    assert all(r["final_step"] == 400 for r in saved["runs"].values() if r["stopped"] == "step_cap")
    assert main(args + ["--max-steps", "400", "--seed", "3"]) == 2
    assert "--seed (seed) was 0, now 3" in capsys.readouterr().err
