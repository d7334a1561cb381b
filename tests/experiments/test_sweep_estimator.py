"""The sweep's per-step noise estimates are the monitor's two-batch estimator, checked against brute force."""

import pytest
import torch

from trainwise.experiments.sweep import train_to_targets
from trainwise.noise.estimators import effective_small_batch, grad_sq_norm_estimate, trace_sigma_estimate

from tests.sweep.linear_task import LinearRegression


def _mean_grad(model, task, batch) -> torch.Tensor:
    model.zero_grad()
    task.loss_fn(model, batch).mean().backward()
    return model.weight.grad.detach().flatten().double().clone()


@pytest.mark.parametrize("batch_size", [8, 9])
def test_halves_estimate_is_the_monitors_two_batch_estimator(batch_size):
    """Both micro-batches enter |G_small|² (averaged, at the harmonic-mean size), not only the first."""
    task = LinearRegression()
    steps = 3
    result, _, trace = train_to_targets(task, batch_size, 0.0, [-1.0], max_steps=steps, eval_growth=10.0,
                                        noise_source="halves")
    assert result.stopped == "step_cap" and trace["step"] == [1, 2, 3]
    # brute force: lr = 0 keeps the initial parameters; replay the run's batches
    model = task.make_model(seed=0)
    stream = task.batches(batch_size, seed=0 * 1_000_003 + batch_size)
    b1 = batch_size // 2
    sizes = [b1, batch_size - b1]
    for i in range(steps):
        x, y = next(stream)
        g_first = _mean_grad(model, task, (x[:b1], y[:b1]))
        g_second = _mean_grad(model, task, (x[b1:], y[b1:]))
        g_all = _mean_grad(model, task, (x, y))
        sq_small = 0.5 * (float(g_first @ g_first) + float(g_second @ g_second))
        b_small = effective_small_batch(sizes)
        want_g = grad_sq_norm_estimate(b_small, sq_small, batch_size, float(g_all @ g_all))
        want_s = trace_sigma_estimate(b_small, sq_small, batch_size, float(g_all @ g_all))
        assert trace["grad_sq_norm"][i] == pytest.approx(want_g, rel=1e-5, abs=1e-9)
        assert trace["trace_sigma"][i] == pytest.approx(want_s, rel=1e-5, abs=1e-9)
        # the first half alone (the sweep's old estimator) gives a different number on the same batch
        first_only = trace_sigma_estimate(b1, float(g_first @ g_first), batch_size, float(g_all @ g_all))
        assert trace["trace_sigma"][i] != pytest.approx(first_only, rel=1e-3)
