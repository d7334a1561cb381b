import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.noise.helpers import LinearRegressionProblem, brute_force_per_example_grads, textbook_estimates, unique_trainable
from trainwise.noise import NoiseScaleMonitor, grad_sq_norm_estimate, trace_sigma_estimate
from trainwise.noise._params import PRECONDITIONER_MIN_STEPS
from trainwise.tasks import get_task


def _accumulated_step(monitor, model, loss_fn, batch, sizes):
    """One optimizer step's gradient under accumulation, micro-batch j weighted b_j/B."""
    total = sum(sizes)
    start = 0
    for size in sizes:
        micro = tuple(t[start : start + size] for t in batch)
        (loss_fn(model, micro).mean() * (size / total)).backward()
        monitor.micro_step(size)
        start += size


def test_sources_agree_with_closed_form_at_fixed_parameters():
    problem = LinearRegressionProblem(np.ones(6), sigma=0.5, seed=2)
    truth = problem.truth
    model = problem.model()
    per_example = NoiseScaleMonitor(model, source="per_example", ema_examples=1e12)
    steps = 300
    for _ in range(steps):
        problem.loss_fn(model, problem.batch(64)).mean().backward()
        per_example.step(batch_size=64)
        model.zero_grad()
    per_example.close()
    accumulation = NoiseScaleMonitor(model, source="accumulation", ema_examples=1e12)
    for _ in range(steps):
        _accumulated_step(accumulation, model, problem.loss_fn, problem.batch(64), [16, 16, 16, 16])
        accumulation.step()
        model.zero_grad()
    for monitor, tolerance in ((per_example, 0.06), (accumulation, 0.12)):
        # a huge time constant makes the EMAs plain means of the unbiased single-step estimates
        g2 = np.mean([r["grad_sq_norm"] for r in monitor.history])
        assert monitor.grad_sq_norm == pytest.approx(g2, rel=1e-6)
        assert monitor.grad_sq_norm == pytest.approx(truth["grad_sq_norm"], rel=tolerance)
        assert monitor.trace_sigma == pytest.approx(truth["trace_sigma"], rel=tolerance)
        assert monitor.b_simple == pytest.approx(truth["b_simple"], rel=tolerance)
    assert accumulation.history[0]["b_small"] == 16 and accumulation.history[0]["batch_size"] == 64


@settings(deadline=None, max_examples=20)
@given(sizes=st.lists(st.integers(1, 5), min_size=2, max_size=5), seed=st.integers(0, 100))
def test_accumulation_estimate_equals_formula_on_independent_micro_gradients(sizes, seed):
    task = get_task("digits-mlp")
    model = task.make_model(seed=1).double()
    x, y = next(task.batches(sum(sizes), seed=seed))
    batch = (x.double(), y)
    monitor = NoiseScaleMonitor(model, source="accumulation")
    _accumulated_step(monitor, model, task.loss_fn, batch, sizes)
    record = monitor.step(batch_size=sum(sizes))
    # reference: micro-batch mean gradients from per-example gradients (independent code path)
    per_example = brute_force_per_example_grads(model, task.loss_fn, batch)
    bounds = np.cumsum([0, *sizes])
    micro_means = [per_example[a:b].mean(0) for a, b in zip(bounds[:-1], bounds[1:])]
    sq_small = np.mean([m @ m for m in micro_means])
    big = per_example.mean(0)
    b_small = len(sizes) / sum(1 / s for s in sizes)
    if b_small == sum(sizes):
        return
    assert record["grad_sq_norm"] == pytest.approx(grad_sq_norm_estimate(b_small, sq_small, sum(sizes), big @ big), rel=1e-9, abs=1e-12)
    assert record["trace_sigma"] == pytest.approx(trace_sigma_estimate(b_small, sq_small, sum(sizes), big @ big), rel=1e-9, abs=1e-12)
    # and the order of the micro-batches does not matter
    model.zero_grad()
    monitor2 = NoiseScaleMonitor(model, source="accumulation")
    order = np.argsort([-s for s in sizes], kind="stable")
    bounds_list = list(zip(bounds[:-1], bounds[1:]))
    permuted = tuple(torch.cat([t[bounds_list[i][0] : bounds_list[i][1]] for i in order]) for t in batch)
    _accumulated_step(monitor2, model, task.loss_fn, permuted, [sizes[i] for i in order])
    assert monitor2.step()["trace_sigma"] == pytest.approx(record["trace_sigma"], rel=1e-9, abs=1e-12)


def test_single_example_micro_batches_equal_the_per_example_source_and_textbook():
    task = get_task("char-gpt", n_layer=1, n_embd=16, block_size=8)
    model = task.make_model().double()
    batch = next(task.batches(6, seed=3))
    accumulation = NoiseScaleMonitor(model, source="accumulation")
    _accumulated_step(accumulation, model, task.loss_fn, batch, [1] * 6)
    rec_acc = accumulation.step()
    model.zero_grad()
    per_example = NoiseScaleMonitor(model, source="per_example")
    task.loss_fn(model, batch).mean().backward()
    rec_pe = per_example.step(batch_size=6)
    g2, trace = textbook_estimates(brute_force_per_example_grads(model, task.loss_fn, batch))
    for rec in (rec_acc, rec_pe):
        assert rec["grad_sq_norm"] == pytest.approx(g2, rel=1e-8)
        assert rec["trace_sigma"] == pytest.approx(trace, rel=1e-8)


def _train(monitor, model, task, optimizer, stream, steps, log_every=None):
    records = []
    for _ in range(steps):
        optimizer.zero_grad()
        losses = task.loss_fn(model, next(stream))
        losses.mean().backward()
        records.append(monitor.step(batch_size=losses.shape[0], loss=float(losses.detach().mean())))
        optimizer.step()
    return records


def test_state_dict_round_trip_continues_identically(tmp_path):
    task = get_task("digits-mlp")

    def run(split_at):
        model = task.make_model(seed=0)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        log = tmp_path / f"noise_{split_at}.jsonl"
        monitor = NoiseScaleMonitor(model, optimizer=optimizer, precondition=True, ema_steps=5, log_path=log,
                                    meta={"task": task.name})
        stream = task.batches(16, seed=0)
        records = _train(monitor, model, task, optimizer, stream, split_at)
        if split_at < 16:
            state = json.loads(json.dumps(monitor.state_dict()))  # survives JSON, like a checkpoint
            monitor.close()
            monitor = NoiseScaleMonitor(model, optimizer=optimizer, precondition=True, ema_steps=5, log_path=log,
                                        meta={"task": task.name})
            monitor.load_state_dict(state)
            records += _train(monitor, model, task, optimizer, stream, 16 - split_at)
        return records, monitor, log

    whole, monitor_whole, log_whole = run(16)
    resumed, monitor_resumed, log_resumed = run(13)  # after the preconditioned averages have started
    assert whole == resumed
    assert monitor_whole.state_dict() == monitor_resumed.state_dict()
    assert log_whole.read_text() == log_resumed.read_text()
    lines = [json.loads(line) for line in log_whole.read_text().splitlines()]
    assert lines[0]["kind"] == "meta" and lines[0]["task"] == "digits-mlp" and lines[0]["source"] == "per_example"
    steps = [line for line in lines if line["kind"] == "step"]
    assert len(steps) == 16
    # Adam's v̂ is no preconditioner before it holds PRECONDITIONER_MIN_STEPS squared gradients: monitor step k
    # comes before optimizer step k, so the first preconditioned reading is at step PRECONDITIONER_MIN_STEPS + 1
    first = PRECONDITIONER_MIN_STEPS
    assert "precond" not in steps[first - 1] and all("precond" in s for s in steps[first:])
    assert steps[-1]["temperature"] == pytest.approx(1e-3 / 16)


def test_preconditioned_estimate_matches_brute_force():
    task = get_task("digits-mlp")
    model = task.make_model(seed=0).double()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    stream = task.batches(8, seed=1)
    x, y = next(stream)
    for _ in range(PRECONDITIONER_MIN_STEPS):  # now v̂ holds enough squared gradients to be a preconditioner
        task.loss_fn(model, (x.double(), y)).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        x, y = next(stream)
    monitor = NoiseScaleMonitor(model, optimizer=optimizer, precondition=True)
    x, y = next(stream)
    batch = (x.double(), y)
    task.loss_fn(model, batch).mean().backward()
    record = monitor.step(batch_size=8)
    params = unique_trainable(model)
    precond = []
    for p in params:
        state = optimizer.state[p]
        v_hat = state["exp_avg_sq"] / (1 - 0.999 ** float(state["step"]))
        precond.append((v_hat.sqrt() + 1e-8).reshape(-1))
    grads = brute_force_per_example_grads(model, task.loss_fn, batch) / torch.cat(precond).numpy()
    g2, trace = textbook_estimates(grads)
    assert record["precond"]["grad_sq_norm"] == pytest.approx(g2, rel=1e-8)
    assert record["precond"]["trace_sigma"] == pytest.approx(trace, rel=1e-8)


@pytest.mark.parametrize("sync_every", [1, None])
def test_loss_scale_is_removed_and_non_finite_steps_are_skipped(tmp_path, sync_every):
    task = get_task("digits-mlp")
    model = task.make_model(seed=0).double()
    x, y = next(task.batches(8, seed=1))
    batch = (x.double(), y)
    plain = NoiseScaleMonitor(model)
    task.loss_fn(model, batch).mean().backward()
    reference = plain.step()
    plain.close()
    model.zero_grad()
    log = tmp_path / "n.jsonl"
    scaled = NoiseScaleMonitor(model, log_path=log, sync_every=sync_every)
    (task.loss_fn(model, batch).mean() * 1024.0).backward()
    record = scaled.step(loss_scale=1024.0)
    assert record["grad_sq_norm"] == pytest.approx(reference["grad_sq_norm"], rel=1e-10)
    assert record["b_simple"] == pytest.approx(reference["b_simple"], rel=1e-10)
    model.zero_grad()
    (task.loss_fn(model, batch).mean() * float("inf")).backward()
    with pytest.warns(RuntimeWarning, match="non-finite"):
        if sync_every == 1:  # eager: the step's record, None when skipped
            assert scaled.step() is None
        else:  # lazy: a PendingRecord; the skip (and its warning) shows when it is read
            skipped = scaled.step()
            assert not skipped.resolved
            assert skipped["kind"] == "skip" and skipped["reason"] == "non_finite_gradient"
    assert scaled.skipped == {"non_finite_gradient": 1}
    assert scaled.b_simple == pytest.approx(reference["b_simple"], rel=1e-10)  # the averages were not touched
    kinds = [json.loads(line)["kind"] for line in log.read_text().splitlines()]
    assert kinds == ["meta", "step", "skip"]


def test_token_units_and_norm_layer_proxy():
    task = get_task("char-gpt", n_layer=1, n_embd=16, block_size=8)
    model = task.make_model()
    batch = next(task.batches(8, seed=3))
    records = {}
    for unit, tokens_per_example in (("examples", None), ("tokens", 8)):
        monitor = NoiseScaleMonitor(model, tokens_per_example=tokens_per_example)
        task.loss_fn(model, batch).mean().backward()
        records[unit] = monitor.step()
        monitor.close()
        model.zero_grad()
        assert monitor.unit == unit
    assert records["tokens"]["tokens"] == 64 and records["examples"]["tokens"] is None
    # the same measurement, batch sizes counted in tokens: 8 tokens per example
    assert records["tokens"]["b_simple"] == pytest.approx(8 * records["examples"]["b_simple"], rel=1e-9)
    assert records["tokens"]["grad_sq_norm"] == pytest.approx(records["examples"]["grad_sq_norm"], rel=1e-9)
    norm_only = NoiseScaleMonitor(model, layers="norm")
    assert len(norm_only.params) == 2 * (2 * 1 + 1)  # ln_1, ln_2, ln_f: weight and bias
    task.loss_fn(model, batch).mean().backward()
    assert math.isfinite(norm_only.step()["b_simple"])


def test_wrong_use_is_explained():
    task = get_task("digits-mlp")
    model = task.make_model()
    with pytest.raises(ValueError, match="'bogus'"):
        NoiseScaleMonitor(model, source="bogus")
    with pytest.raises(ValueError, match="DistributedDataParallel"):
        NoiseScaleMonitor(model, source="ddp")
    with pytest.raises(ValueError, match="optimizer"):
        NoiseScaleMonitor(model, precondition=True)
    accumulation = NoiseScaleMonitor(model, source="accumulation")
    with pytest.raises(RuntimeError, match="micro_step"):
        accumulation.step()
    per_example = NoiseScaleMonitor(model)
    with pytest.raises(RuntimeError, match="micro_step"):
        per_example.micro_step(4)
    x, y = next(task.batches(4))
    task.loss_fn(model, (x, y)).mean().backward()
    with pytest.raises(ValueError, match="batch_size=5 but the captured batch has 4"):
        per_example.step(batch_size=5)
    frozen = get_task("digits-mlp").make_model().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        NoiseScaleMonitor(frozen)


@pytest.mark.parametrize("source", ["per_example", "accumulation"])
def test_every_kth_step_measures_only_those_and_keeps_the_example_clock(source):
    task = get_task("digits-mlp")
    model = task.make_model(seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    monitor = NoiseScaleMonitor(model, source=source, every=3, ema_examples=40)
    stream = task.batches(8, seed=0)
    for step in range(1, 10):
        optimizer.zero_grad()
        x, y = next(stream)
        if source == "accumulation":
            for part in (slice(0, 4), slice(4, 8)):
                (task.loss_fn(model, (x[part], y[part])).mean() / 2).backward()
                monitor.micro_step(4)
            record = monitor.step()
        else:
            if monitor._engine is not None:
                assert monitor._engine._capturing == (step % 3 == 0)  # hooks only on measured steps
            task.loss_fn(model, (x, y)).mean().backward()
            record = monitor.step(batch_size=8)
        assert (record is not None) == (step % 3 == 0)
        optimizer.step()
    assert [r["step"] for r in monitor.history] == [3, 6, 9]
    assert monitor.examples == 72 and monitor.history[-1]["examples"] == 72
    # the averages decayed by all 24 examples between readings: weight after 3 readings of 24 examples
    weight = 1 - math.exp(-72 / 40)
    assert monitor._emas["grad_sq_norm"].weight == pytest.approx(weight)
    with pytest.raises(ValueError, match="every"):
        NoiseScaleMonitor(model, every=0)
