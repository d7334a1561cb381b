"""Honest intervals for ratios of means: the t critical value, Fieller's interval, ``Measured``."""

import json
import math

import numpy as np
import pytest

from trainwise.noise import Measured, ratio_of_means
from trainwise.noise.estimators import PairedMeans, fieller_interval, t_critical

# -- the t critical value ---------------------------------------------------------------------------


@pytest.mark.parametrize("level", [0.5, 0.9, 0.95, 0.99])
def test_t_critical_closed_forms_for_one_and_two_degrees_of_freedom(level):
    # ν = 1 is Cauchy: P(|T| ≤ t) = (2/π) atan t; ν = 2: P(|T| ≤ t) = t/√(2 + t²)
    assert t_critical(level, 1) == pytest.approx(math.tan(math.pi * level / 2), rel=1e-10)
    assert t_critical(level, 2) == pytest.approx(level * math.sqrt(2 / (1 - level**2)), rel=1e-10)


def test_t_critical_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for dof in (3, 4, 7, 8, 15, 16, 99, 1023, 2000, 2001, 10**6):
        for level in (0.9, 0.95, 0.99):
            assert t_critical(level, dof) == pytest.approx(stats.t.ppf(0.5 + level / 2, dof), rel=1e-9), (level, dof)


def test_t_critical_rejects_bad_arguments_by_value():
    with pytest.raises(ValueError, match="1.5"):
        t_critical(1.5, 3)
    with pytest.raises(ValueError, match="0"):
        t_critical(0.95, 0)


# -- Fieller's interval -----------------------------------------------------------------------------


def _t_statistic(x, y, ratio):
    """t-statistic of ``mean(x − R y) = 0``: the test Fieller's interval inverts, computed directly."""
    d = x - ratio * y
    return abs(d.mean()) / (d.std(ddof=1) / math.sqrt(d.size))


@pytest.mark.parametrize("seed", range(6))
def test_fieller_interval_is_the_set_the_t_test_does_not_reject(seed):
    rng = np.random.default_rng(seed)
    n = 6
    y = 1.0 + 0.4 * rng.standard_normal(n) * (1 + seed)  # seeds 4, 5: a denominator near noise level
    x = 3.0 + rng.standard_normal(n) + 0.5 * y
    t = t_critical(0.95, n - 1)
    m = ratio_of_means(x, y)
    denominator_z = abs(y.mean()) / (y.std(ddof=1) / math.sqrt(n))
    grid = np.linspace(-200, 200, 40001)
    d = x[None, :] - grid[:, None] * y[None, :]
    accepted = np.abs(d.mean(1)) / (d.std(1, ddof=1) / math.sqrt(n)) <= t
    if denominator_z > t:
        low, high = m.interval()
        assert m.bounded and m.resolved
        inside = (grid >= low) & (grid <= high)
        assert np.array_equal(accepted[~np.isclose(grid, low) & ~np.isclose(grid, high)],
                              inside[~np.isclose(grid, low) & ~np.isclose(grid, high)])
        assert _t_statistic(x, y, low) == pytest.approx(t, rel=1e-8)
        assert _t_statistic(x, y, high) == pytest.approx(t, rel=1e-8)
        assert low <= m.value <= high
        assert m.stderr == pytest.approx((high - low) / (2 * t))
    else:  # not significantly non-zero: arbitrarily large ratios are not rejected
        assert not m.bounded and not m.resolved and math.isinf(m.stderr)
        assert _t_statistic(x, y, 1e9) <= t and _t_statistic(x, y, -1e9) <= t
        assert m.interval() == (-math.inf, math.inf)


def test_fieller_covers_at_its_level_under_normality_where_the_delta_method_does_not():
    # n = 8 normal pairs with a denominator mean ~2.8 standard errors from zero: Fieller's set is
    # exact here (a t-test inverted); the delta method's x̄/ȳ ± t·se is not, even with the t value.
    rng = np.random.default_rng(7)
    n, reps, true_ratio = 8, 3000, 4.0
    y = 1.0 + 1.0 * rng.standard_normal((reps, n))
    x = true_ratio + 0.5 * rng.standard_normal((reps, n))
    t = t_critical(0.95, n - 1)
    fieller = exact_set = delta = unbounded = 0
    for xs, ys in zip(x, y):
        f = ratio_of_means(xs, ys)
        low, high = f.interval()
        fieller += low <= true_ratio <= high
        exact_set += _t_statistic(xs, ys, true_ratio) <= t  # membership in Fieller's set, by definition
        unbounded += not f.bounded
        d = ratio_of_means(xs, ys, method="delta")
        delta += abs(d.value - true_ratio) <= t * d.stderr
    # binomial sd of a 95% coverage over 3000 repeats is 0.004: ±0.015 is > 3.5 sd
    assert 0.935 <= exact_set / reps <= 0.965
    # an unbounded set is reported as the whole line (a superset when it is the line minus a gap)
    assert exact_set <= fieller <= exact_set + unbounded and fieller / reps <= 0.99
    assert delta / reps < 0.93
    assert 0.02 < unbounded / reps < 0.5


def test_paired_means_accumulator_equals_the_array_computation():
    rng = np.random.default_rng(3)
    x = 1e6 + rng.standard_normal(50)  # large means: the running sums must not cancel
    y = 2e5 + 0.5 * rng.standard_normal(50) + 0.1 * x
    acc = PairedMeans()
    for a, b in zip(x, y):
        acc.add(a, b)
    ours = acc.ratio(scale=3.0, positive=True)
    ref = ratio_of_means(x, y, scale=3.0, positive=True)
    assert ours.value == pytest.approx(ref.value, rel=1e-12)
    assert ours.stderr == pytest.approx(ref.stderr, rel=1e-6)
    assert ours.low == pytest.approx(ref.low, rel=1e-10) and ours.high == pytest.approx(ref.high, rel=1e-10)


def test_fieller_closed_form_values():
    # ȳ = 2, v_yy = 0.25, t = 2: a = 4 − 1 = 3; x̄ = 6, v_xx = 1, v_xy = 0: b = 12, c = 36 − 4 = 32
    # R = (12 ± √(144 − 96))/3 = 4 ± √48/3
    low, high = fieller_interval(6.0, 2.0, 1.0, 0.25, 0.0, 2.0)
    assert low == pytest.approx(4 - math.sqrt(48) / 3) and high == pytest.approx(4 + math.sqrt(48) / 3)
    assert fieller_interval(6.0, 1.0, 1.0, 0.25, 0.0, 2.0) is None  # a = 1 − 1 = 0: unbounded


# -- Measured -------------------------------------------------------------------------------------


def test_measured_interval_scaling_and_strict_json():
    m = Measured(2.0, 0.5, 10, 1.2, 3.5, positive=True)
    assert m.interval() == (1.2, 3.5)
    assert m.interval(2.0) == (1.0, 3.0)  # an explicit z asks for the normal approximation
    assert m.resolved and m.relative_error == 0.25
    neg = m.scaled(-2.0)
    assert (neg.value, neg.stderr, neg.low, neg.high) == (-4.0, 1.0, -7.0, -2.4)
    assert not neg.positive
    assert Measured(1.0, 0.1).interval() == (1.0 - 0.196, 1.0 + 0.196)
    assert not Measured(-1.0, 0.1, positive=True).resolved
    assert not Measured(math.nan, 0.1).resolved
    unbounded = Measured(5.0, math.inf, 8, -math.inf, math.inf, positive=True)
    as_dict = unbounded.to_dict()
    assert as_dict == {"value": 5.0, "stderr": None, "n": 8, "low": None, "high": None, "resolved": False}
    json.dumps(as_dict, allow_nan=False)
    assert "not resolved" in format(unbounded)
    assert "[1.2, 3.5]" in format(m, ".2g")


def test_ratio_of_means_rejects_unknown_method_and_level():
    with pytest.raises(ValueError, match="'bootstrap'"):
        ratio_of_means([1.0, 2.0], [1.0, 1.0], method="bootstrap")
    with pytest.raises(ValueError, match="1.2"):
        ratio_of_means([1.0, 2.0], [1.0, 1.0], level=1.2)
