import math

import numpy as np
import pytest
import torch

from tests.noise.helpers import LinearRegressionProblem
from trainwise.noise import measure_noise_scale
from trainwise.tasks import get_task


def _check_against_truth(result, truth, names, max_rel, max_z=4.5):
    for name in names:
        measured = getattr(result, name)
        true = truth[name]
        z = abs(measured.value - true) / measured.stderr
        rel = abs(measured.value - true) / abs(true)
        assert z < max_z, f"{name}: {measured} vs truth {true:.5g} (z={z:.2f})"
        assert rel < max_rel, f"{name}: {measured} vs truth {true:.5g} ({rel:.1%} off)"


ALL = ("grad_sq_norm", "trace_sigma", "ghg", "trace_h_sigma", "b_simple", "b_noise", "eps_max", "delta_l_max")


def test_isotropic_linear_regression_closed_form():
    problem = LinearRegressionProblem(np.ones(8), sigma=0.5, seed=3)
    truth = problem.truth
    assert truth["b_noise"] == pytest.approx(truth["b_simple"])  # H ∝ I: the two coincide
    result = measure_noise_scale(problem.model(), problem.loss_fn, problem.batches(512), rounds=200)
    _check_against_truth(result, truth, ALL, max_rel=0.06)
    assert result.b_simple.relative_error < 0.02
    assert result.rounds == 200 and result.examples == 200 * 1024 and result.b_small == 1 and result.b_big == 512


def test_anisotropic_linear_regression_b_noise_differs_from_b_simple():
    problem = LinearRegressionProblem(np.array([0.5, 1.0, 1.0, 2.0]), sigma=0.1, seed=3, along_smallest=True)
    truth = problem.truth
    assert truth["b_noise"] > 2.5 * truth["b_simple"]  # curvature weighting matters here
    result = measure_noise_scale(problem.model(), problem.loss_fn, problem.batches(1024), rounds=300)
    _check_against_truth(result, truth, ALL, max_rel=0.2)
    assert result.b_simple.relative_error < 0.01 and result.b_noise.relative_error < 0.08
    # the measurement sees the difference, far beyond its error bars
    gap = result.b_noise.value - result.b_simple.value
    assert gap > 5 * math.hypot(result.b_noise.stderr, result.b_simple.stderr)


@pytest.mark.slow
def test_closed_form_within_a_few_percent_with_many_rounds():
    for problem in (
        LinearRegressionProblem(np.ones(8), sigma=0.5, seed=3),
        LinearRegressionProblem(np.array([0.5, 1.0, 1.0, 2.0]), sigma=0.1, seed=3, along_smallest=True),
    ):
        result = measure_noise_scale(problem.model(), problem.loss_fn, problem.batches(1024), rounds=6000)
        _check_against_truth(result, problem.truth, ALL, max_rel=0.05)


def test_batch_halves_fallback_is_unbiased_too():
    problem = LinearRegressionProblem(np.ones(6), sigma=0.5, seed=5)
    result = measure_noise_scale(problem.model(), problem.loss_fn, problem.batches(64), rounds=400, per_example=False, hessian=False)
    assert result.b_small == 32 and result.b_noise is None
    _check_against_truth(result, problem.truth, ("grad_sq_norm", "trace_sigma", "b_simple"), max_rel=0.15)


def test_parameters_grads_and_mode_are_left_as_they_were():
    task = get_task("char-gpt", n_layer=1, n_embd=32, block_size=16)
    model = task.make_model()
    model.eval()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    marker = torch.full_like(model.wte.weight, 7.0)
    model.wte.weight.grad = marker.clone()
    result = measure_noise_scale(model, task.loss_fn, task.batches(8), rounds=3, tokens_per_example=16)
    assert not model.training
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name
    assert torch.equal(model.wte.weight.grad, marker)
    assert model.blocks[0].fc.weight.grad is None
    assert result.unit == "tokens" and result.tokens_per_example == 16
    assert result.b_noise is not None and math.isfinite(result.b_simple.value)
    as_dict = result.to_dict()
    assert set(as_dict["b_simple"]) == {"value", "stderr", "n", "low", "high", "resolved"}


def test_token_units_scale_batch_sizes():
    problem = LinearRegressionProblem(np.ones(4), seed=1)
    model = problem.model()
    a = measure_noise_scale(model, problem.loss_fn, problem.batches(32), rounds=5, hessian=False)
    problem.gen.manual_seed(2)
    problem2 = LinearRegressionProblem(np.ones(4), seed=1)
    b = measure_noise_scale(model, problem2.loss_fn, problem2.batches(32), rounds=5, hessian=False, tokens_per_example=128)
    assert b.b_simple.value == pytest.approx(128 * a.b_simple.value)
    assert b.grad_sq_norm.value == pytest.approx(a.grad_sq_norm.value)


def test_wrong_loss_shape_and_nan_are_reported():
    problem = LinearRegressionProblem(np.ones(4))
    with pytest.raises(ValueError, match=r"per-example losses of shape \[4\]"):
        measure_noise_scale(problem.model(), lambda m, b: problem.loss_fn(m, b).mean(), problem.batches(8), rounds=1)
    with pytest.raises(FloatingPointError, match="non-finite"):
        measure_noise_scale(problem.model(), lambda m, b: problem.loss_fn(m, b) * float("nan"), problem.batches(8), rounds=1)
    with pytest.raises(ValueError, match="rounds"):
        measure_noise_scale(problem.model(), problem.loss_fn, problem.batches(8), rounds=0)


def test_short_iterable_warns():
    problem = LinearRegressionProblem(np.ones(4))
    batches = [problem.batch(16) for _ in range(4)]
    with pytest.warns(RuntimeWarning, match="only 2 of 5 rounds"):
        result = measure_noise_scale(problem.model(), problem.loss_fn, batches, rounds=5)
    assert result.rounds == 2


def test_preconditioned_update_closed_form():
    from tests.noise.helpers import preconditioned_truth

    problem = LinearRegressionProblem(np.array([0.5, 1.0, 1.0, 2.0]), sigma=0.3, seed=0)
    precond = np.array([0.3, 1.0, 2.0, 4.0])
    truth = preconditioned_truth(problem, precond)
    plain = problem.truth
    assert truth["b_noise"] > 2 * plain["b_noise"]  # the preconditioner changes the answer
    model = problem.model()
    result = measure_noise_scale(model, problem.loss_fn, problem.batches(1024), rounds=300,
                                 preconditioner=[torch.tensor(precond)[None]])
    assert result.info["preconditioned"]
    _check_against_truth(result, truth, ALL, max_rel=0.2)
    assert result.b_simple.relative_error < 0.02


def test_preconditioner_from_adam_state_and_errors():
    problem = LinearRegressionProblem(np.ones(4), seed=1)
    model = problem.model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="take a step first"):
        measure_noise_scale(model, problem.loss_fn, problem.batches(16), rounds=1, preconditioner=optimizer)
    problem.loss_fn(model, problem.batch(16)).mean().backward()
    optimizer.step()
    result = measure_noise_scale(model, problem.loss_fn, problem.batches(16), rounds=2, preconditioner=optimizer)
    assert result.info["preconditioned"] and math.isfinite(result.b_noise.value)
    with pytest.raises(ValueError, match="one tensor per trainable parameter"):
        measure_noise_scale(model, problem.loss_fn, problem.batches(16), rounds=1, preconditioner=[torch.ones(3)])
