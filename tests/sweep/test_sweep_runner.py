import json
import math

import pytest
import torch

from trainwise.sweep import SweepConfig, lr_for_rule, run_sweep, train_to_targets
from trainwise.sweep import runner as runner_module
from trainwise.sweep.runner import noise_window_average

from .linear_task import LinearRegression


@pytest.mark.parametrize("noise_source,steps", [("halves", 1500), ("monitor", 400)])
def test_per_step_noise_estimates_match_brute_force_at_fixed_parameters(noise_source, steps):
    task = LinearRegression()
    # lr = 0: the parameters stay at the initialisation, so the per-step estimates average to the pool's
    result, _, trace = train_to_targets(task, 16, 0.0, [-1.0], max_steps=steps, eval_growth=10.0,
                                        plateau_min_steps=10**9, noise_source=noise_source)
    model = task.make_model(seed=0)
    grads = []
    for i in range(task.num_train_examples()):
        model.zero_grad()
        task.loss_fn(model, (task.x[i : i + 1], task.y[i : i + 1])).sum().backward()
        grads.append(model.weight.grad.flatten().clone())
    grads = torch.stack(grads).double()
    mean = grads.mean(0)
    grad_sq_norm = float(mean @ mean)
    trace_sigma = float(((grads - mean) ** 2).sum(1).mean())
    avg = noise_window_average(trace["step"], trace["grad_sq_norm"], trace["trace_sigma"], 0, 10**9)
    n = len(trace["step"])
    # unbiased: the window means agree with the brute-force values within 4 standard errors of the mean
    for name, truth in (("grad_sq_norm", grad_sq_norm), ("trace_sigma", trace_sigma)):
        stderr = float(torch.tensor(trace[name]).std()) / math.sqrt(n)
        assert abs(avg[name] - truth) < 4 * stderr, (name, avg[name], truth, stderr)
        assert avg[name] == pytest.approx(truth, rel=0.2)
    b_simple = avg["b_simple"]
    assert abs(b_simple["value"] - trace_sigma / grad_sq_norm) < 4 * b_simple["stderr"]
    assert result.stopped == "step_cap"


def test_lr_rules():
    assert lr_for_rule("linear", 64, 0.1, 16) == pytest.approx(0.4)
    assert lr_for_rule("sqrt", 64, 0.1, 16) == pytest.approx(0.2)
    assert lr_for_rule("constant", 64, 0.1, 16) == 0.1
    with pytest.raises(ValueError, match="'cubic'"):
        lr_for_rule("cubic", 64, 0.1, 16)


def test_config_validation_quotes_bad_values():
    with pytest.raises(ValueError, match=r"\[1, 4\]"):
        SweepConfig(task="x", batch_sizes=[1, 4], targets=[1.0])
    with pytest.raises(ValueError, match="-0.1"):
        SweepConfig(task="x", batch_sizes=[4], targets=[1.0], lrs=[-0.1])


def test_sweep_fits_resumes_and_probes_tuned_runs(tmp_path, monkeypatch):
    task = LinearRegression()
    config = SweepConfig(task="linreg", batch_sizes=[2, 8, 32, 128], targets=[0.4, 0.3], lrs=[0.03, 0.1],
                         max_steps=2000, optimizer="sgd")
    calls = []

    def fake_measure(model, task_, step):
        calls.append(step)
        return {"b_noise": {"value": 10.0, "stderr": 1.0}, "trace_h_sigma": {"value": 20.0, "stderr": 0.0},
                "ghg": {"value": 2.0, "stderr": 0.0}}

    result = run_sweep(task, config, tmp_path, noise_measure=fake_measure, show_progress=False)
    assert set(result.tuned) == {2, 8, 32, 128}
    for tkey in ("0.4", "0.3"):
        row = result.steps_table[tkey]
        assert all(row[b] is not None for b in config.batch_sizes)
        # steps-to-target is the minimum over the LR grid
        for b in config.batch_sizes:
            per_lr = [r.steps_to_target[tkey] for r in result.runs.values() if r.batch_size == b]
            assert row[b] == min(v for v in per_lr if v is not None)
        assert tkey in result.fits and math.isfinite(result.fits[tkey].b_crit)
    assert result.noise["b_noise"]["value"] == pytest.approx(10.0)
    assert calls, "the B_noise hook ran on checkpoints of the tuned runs"
    saved = json.loads((tmp_path / "sweep.json").read_text())
    assert saved["kind"] == "sweep" and set(saved["fits"]) == {"0.4", "0.3"}

    # resume: nothing is retrained or re-probed
    def boom(*args, **kwargs):
        raise AssertionError("a finished run was repeated")

    monkeypatch.setattr(runner_module, "train_to_targets", boom)
    again = run_sweep(task, config, tmp_path, noise_measure=boom, show_progress=False)
    assert again.steps_table == result.steps_table

    # an interrupted sweep (state with only some runs) continues with the rest only
    state = json.loads((tmp_path / "sweep_state.json").read_text())
    dropped = sorted(state["runs"])[:2]
    for key in dropped:
        del state["runs"][key]
    (tmp_path / "sweep_state.json").write_text(json.dumps(state))
    monkeypatch.undo()
    done = []
    original = runner_module.train_to_targets

    def counting(task_, batch_size, lr, *args, **kwargs):
        done.append(runner_module._key(batch_size, lr))
        return original(task_, batch_size, lr, *args, **kwargs)

    monkeypatch.setattr(runner_module, "train_to_targets", counting)
    run_sweep(task, config, tmp_path, show_progress=False)
    assert sorted(done) == dropped

    # a different configuration refuses to reuse the state
    other = SweepConfig(task="linreg", batch_sizes=[2, 8], targets=[0.4], lrs=[0.03], optimizer="sgd")
    with pytest.raises(ValueError, match="other settings that change the results"):
        run_sweep(task, other, tmp_path, show_progress=False)


def test_diverging_run_is_flagged():
    task = LinearRegression()
    result, _, _ = train_to_targets(task, 8, 50.0, [0.5], max_steps=200, optimizer="sgd")
    assert result.stopped == "diverged"
    assert result.steps_to_target["0.5"] is None or math.isfinite(result.steps_to_target["0.5"])


def test_probe_gets_the_runs_adam_state_at_each_checkpoint(tmp_path):
    """The Hessian probe receives the optimizer as it was at the checkpoint (Adam's v̂ is the preconditioner),
    and the per-target predictions include the preconditioned B_noise."""
    task = LinearRegression()
    config = SweepConfig(task="linreg", batch_sizes=[4, 16, 64], targets=[0.6, 0.4], lrs=[0.02, 0.05],
                         max_steps=1500, optimizer="adamw", noise_checkpoints=3)
    seen = []

    def measure(model, task_, step, optimizer=None):
        assert isinstance(optimizer, torch.optim.AdamW)
        states = [optimizer.state[p] for p in model.parameters()]
        assert all(int(st["step"]) == step for st in states), "optimizer state is from another step"
        # the optimizer drives this very model's parameters
        assert {id(p) for g in optimizer.param_groups for p in g["params"]} == {id(p) for p in model.parameters()}
        seen.append(step)
        value = {"value": 1.0, "stderr": 0.0}
        return {"trace_h_sigma": {"value": 30.0, "stderr": 0.0}, "ghg": value, "b_noise": {"value": 30.0, "stderr": 0.0},
                "precond_trace_h_sigma": {"value": 12.0, "stderr": 0.0}, "precond_ghg": value,
                "precond_b_noise": {"value": 12.0, "stderr": 0.0}}

    result = run_sweep(task, config, tmp_path, noise_measure=measure, show_progress=False)
    assert seen and len(seen) <= 3 * len(config.batch_sizes)
    for tkey in ("0.6", "0.4"):
        pred = result.noise["targets"][tkey]
        assert pred["b_noise"]["value"] == pytest.approx(30.0)
        assert pred["b_noise_precond"]["value"] == pytest.approx(12.0)
    rows = runner_module.prediction_table(result.to_dict())
    assert {r["target"] for r in rows} == set(result.fits)
    for r in rows:
        assert r["b_noise_precond_ratio"] == pytest.approx(12.0 / r["b_crit"])


def test_checkpoint_thinning_keeps_a_bounded_geometric_set():
    checkpoints = {}
    for step in range(0, 5000):
        checkpoints[step] = {}
        runner_module._thin_checkpoints(checkpoints, 20)
    keys = sorted(checkpoints)
    assert len(keys) == 20 and keys[0] == 0 and keys[-1] == 4999
    ratios = [(b + 1) / (a + 1) for a, b in zip(keys[1:], keys[2:])]
    assert max(ratios) < 2.5 * min(ratios)  # roughly evenly spread in log(step)


def test_pick_checkpoints_spreads_over_the_run():
    available = sorted({round(1.15 ** k) for k in range(60)})
    picked = runner_module._pick_checkpoints(available, 0, 1000, 6)
    assert len(picked) == 6 and picked[-1] <= 1000
    assert picked[-1] >= 800 and picked[0] <= 60


def test_steps_rising_with_batch_are_flagged():
    # the digits MLP's hardest held-out target: large batches need more steps (overfitting), which S(B) cannot fit
    rising = runner_module.steps_rise_with_batch([4, 16, 64, 128, 256, 512], [462, 206, 70, 65, 82, 87])
    assert rising.startswith("B=256: 82 steps vs 65 at B=128") and "B=512: 87" in rising and "B=128:" not in rising
    # a single bump of a fifth at a few dozen steps is grid scatter (digits' 0.25 target, char-GPT's 2.6)
    assert runner_module.steps_rise_with_batch([4, 8, 16, 32, 64, 128, 256, 512],
                                               [217, 131, 49, 36, 28.2, 34.7, 19.6, 14.3]) == ""
    assert runner_module.steps_rise_with_batch([4, 16, 64, 256], [400, 120, 60, 62]) == ""
    # but one large jump counts
    assert "B=256" in runner_module.steps_rise_with_batch([4, 16, 64, 256], [400, 120, 60, 95])
