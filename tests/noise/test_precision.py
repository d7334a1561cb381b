"""Measurement to a precision (``rel_err``) and the coverage of its intervals on the closed-form problem."""

import warnings

import numpy as np
import pytest

import trainwise.noise.measure as measure_module
from tests.noise.helpers import LinearRegressionProblem
from trainwise.noise import measure_noise_scale, ratio_of_means

# -- coverage on the closed-form linear problem ----------------------------------------------------


@pytest.mark.filterwarnings("ignore:measure_noise_scale. GᵀHG averaged:RuntimeWarning")
def test_interval_coverage_of_b_simple_and_b_noise_on_the_linear_problem(monkeypatch):
    """95% intervals from 8 rounds of 64 examples, near the optimum (small |G|²): in many repeats the
    denominators |G|² and GᵀHG are only a few standard errors from zero. 300 seeded repeats.

    An unbounded (not resolved) interval contains the truth and counts as covering; it must stay a
    minority, and the bounded ones must cover on their own too. The old delta-method interval
    ``x̄/ȳ ± 1.96·se`` from the very same rounds (captured from the call) is the comparison.
    """
    captured = []

    def spy(x, y, *args, **kwargs):
        captured.append((np.asarray(x), np.asarray(y)))
        return ratio_of_means(x, y, *args, **kwargs)

    monkeypatch.setattr(measure_module, "ratio_of_means", spy)
    problem = LinearRegressionProblem(np.ones(8), sigma=0.5, seed=0)
    problem.d = 0.12 * problem.d  # a late checkpoint: the gradient is small against its noise
    truth = problem.truth
    model = problem.model()
    reps = 300
    counts = {name: dict(fieller=0, delta=0, unbounded=0, bounded_cover=0, only_fieller=0, only_delta=0)
              for name in ("b_simple", "b_noise")}
    for rep in range(reps):
        problem.gen.manual_seed(1000 + rep)
        captured.clear()
        result = measure_noise_scale(model, problem.loss_fn, problem.batches(64), rounds=8)
        assert result.info["stopped"] == "rounds"
        for name, (x, y) in zip(("b_simple", "b_noise"), captured[:2]):
            m, c, true = getattr(result, name), counts[name], truth[name]
            low, high = m.interval()
            fieller_covers = low <= true <= high
            delta = ratio_of_means(x, y, method="delta")
            delta_covers = abs(delta.value - true) <= 1.96 * delta.stderr
            assert delta.value == pytest.approx(m.value)
            c["fieller"] += fieller_covers
            c["delta"] += delta_covers
            c["unbounded"] += not m.bounded
            c["bounded_cover"] += m.bounded and fieller_covers
            c["only_fieller"] += fieller_covers and not delta_covers
            c["only_delta"] += delta_covers and not fieller_covers
    for name, c in counts.items():
        fieller, delta, unbounded = c["fieller"] / reps, c["delta"] / reps, c["unbounded"] / reps
        assert 0.90 <= fieller <= 0.99, (name, c)
        assert unbounded < 0.4, (name, c)
        assert c["bounded_cover"] / (reps - c["unbounded"]) >= 0.90, (name, c)  # not carried by the unbounded
        assert delta < fieller - 0.03, (name, c)  # the delta method under-covers in the same rounds
        assert c["only_fieller"] >= 2 * max(c["only_delta"], 1), (name, c)
    assert counts["b_simple"]["unbounded"] > 0 and counts["b_noise"]["unbounded"] > 0  # the setting is noisy


# -- rel_err stopping ------------------------------------------------------------------------------


def test_measures_to_the_requested_precision():
    problem = LinearRegressionProblem(np.ones(8), sigma=0.5, seed=3)
    truth = problem.truth
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = measure_noise_scale(problem.model(), problem.loss_fn, problem.batches(512), rel_err=0.1)
    assert result.info["stopped"] == "precision" and result.info["rel_err"] == 0.1
    assert 8 <= result.rounds < 1024
    for name in ("b_simple", "b_noise"):
        m = getattr(result, name)
        assert m.resolved and m.relative_error <= 0.1
        assert result.info["relative_error"][name] == pytest.approx(m.relative_error)
        assert abs(m.value - truth[name]) <= 3 * m.stderr, (name, m, truth[name])
        low, high = m.interval()
        assert low <= truth[name] <= high
    # B_noise is the harder one here: it set the count, so it ended just under the target
    assert result.b_noise.relative_error > 0.07


def test_without_hessian_only_b_simple_sets_the_count():
    problem = LinearRegressionProblem(np.ones(8), sigma=0.5, seed=3)
    result = measure_noise_scale(problem.model(), problem.loss_fn, problem.batches(64), rel_err=0.05, hessian=False)
    assert result.info["stopped"] == "precision" and result.b_noise is None
    assert result.info["relative_error"] == {"b_simple": pytest.approx(result.b_simple.relative_error), "b_noise": None}
    assert 0.04 < result.b_simple.relative_error <= 0.05
    assert abs(result.b_simple.value - problem.truth["b_simple"]) <= 3 * result.b_simple.stderr


def test_batches_running_out_first_is_reported_and_warned():
    problem = LinearRegressionProblem(np.ones(8), sigma=0.5, seed=3)
    batches = [problem.batch(64) for _ in range(10)]  # 5 rounds with the Hessian batches
    with pytest.warns(RuntimeWarning, match=r"stopped after 5 rounds \(the batches ran out\) short of rel_err=0\.1"):
        result = measure_noise_scale(problem.model(), problem.loss_fn, batches, rel_err=0.1)
    assert result.info["stopped"] == "batches_ran_out" and result.rounds == 5


def test_max_rounds_is_reported_and_warned():
    problem = LinearRegressionProblem(np.ones(8), sigma=0.5, seed=3)
    with pytest.warns(RuntimeWarning, match="max_rounds reached"):
        result = measure_noise_scale(problem.model(), problem.loss_fn, problem.batches(32), rel_err=0.001,
                                     min_rounds=4, max_rounds=12, hessian=False)
    assert result.info["stopped"] == "max_rounds" and result.rounds == 12
    assert result.info["relative_error"]["b_simple"] > 0.001


def test_fixed_rounds_stop_at_the_count_without_a_precision_warning():
    problem = LinearRegressionProblem(np.ones(8), sigma=0.5, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = measure_noise_scale(problem.model(), problem.loss_fn, problem.batches(32), rounds=3, hessian=False)
    assert result.info["stopped"] == "rounds" and result.info["rel_err"] is None and result.rounds == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rel_err=0.0), "rel_err .* got 0.0"),
        (dict(rel_err=1.0), "rel_err .* got 1.0"),
        (dict(rel_err="0.1"), "rel_err .* got '0.1'"),
        (dict(rounds=0), "rounds .* got 0"),
        (dict(rounds=2.5), "rounds .* got 2.5"),
        (dict(rounds=True), "rounds .* got True"),
        (dict(min_rounds=0), "min_rounds .* got 0"),
        (dict(max_rounds=-3), "max_rounds .* got -3"),
        (dict(min_rounds=20, max_rounds=10), "min_rounds=20, max_rounds=10"),
        (dict(per_example="yes"), "per_example .* got 'yes'"),
    ],
)
def test_arguments_are_checked_before_any_work(kwargs, message):
    problem = LinearRegressionProblem(np.ones(4))

    def no_batches():
        raise AssertionError("a batch was drawn before the arguments were checked")
        yield

    with pytest.raises(ValueError, match=message):
        measure_noise_scale(problem.model(), problem.loss_fn, no_batches(), **kwargs)
