import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.noise.helpers import textbook_estimates
from trainwise.noise import ExampleEMA, effective_small_batch, grad_sq_norm_estimate, ratio_of_means, trace_sigma_estimate


@given(
    g2=st.floats(0.01, 100), trace=st.floats(0.0, 1e4),
    b_small=st.integers(1, 64), extra=st.integers(1, 512),
)
def test_two_batch_estimators_invert_the_expectation(g2, trace, b_small, extra):
    # E|G_B|² = |G|² + tr(Σ)/B at both sizes, so plugging the expectations in returns the truth.
    b_big = b_small + extra
    sq_small, sq_big = g2 + trace / b_small, g2 + trace / b_big
    assert grad_sq_norm_estimate(b_small, sq_small, b_big, sq_big) == pytest.approx(g2, rel=1e-9, abs=1e-9)
    assert trace_sigma_estimate(b_small, sq_small, b_big, sq_big) == pytest.approx(trace, rel=1e-9, abs=1e-6)


def test_per_example_form_equals_textbook_sample_covariance():
    rng = np.random.default_rng(0)
    grads = rng.standard_normal((16, 7)) + rng.standard_normal(7)
    batch = grads.shape[0]
    sq_small = float((grads**2).sum(1).mean())  # B_small = 1: mean of |g_i|²
    mean = grads.mean(0)
    sq_big = float(mean @ mean)
    ref_g2, ref_trace = textbook_estimates(grads)
    assert grad_sq_norm_estimate(1, sq_small, batch, sq_big) == pytest.approx(ref_g2, rel=1e-12)
    assert trace_sigma_estimate(1, sq_small, batch, sq_big) == pytest.approx(ref_trace, rel=1e-12)


def test_bad_batch_sizes_are_named():
    with pytest.raises(ValueError, match="b_small=8, b_big=8"):
        grad_sq_norm_estimate(8, 1.0, 8, 1.0)


def test_effective_small_batch_is_harmonic_mean():
    assert effective_small_batch([4, 4, 4]) == 4
    assert effective_small_batch([2, 6]) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        effective_small_batch([0, 2])


def test_ratio_of_means_stderr_matches_monte_carlo():
    rng = np.random.default_rng(1)
    n, reps = 200, 400
    ratios, stderrs = [], []
    for _ in range(reps):
        y = 2.0 + rng.standard_normal(n)
        x = 10.0 + 3 * rng.standard_normal(n) + 0.5 * (y - 2.0)
        m = ratio_of_means(x, y)
        ratios.append(m.value)
        stderrs.append(m.stderr)
    assert np.mean(ratios) == pytest.approx(5.0, rel=0.01)
    assert np.std(ratios) == pytest.approx(np.mean(stderrs), rel=0.15)


def test_ema_is_bias_corrected_and_counts_examples():
    ema = ExampleEMA(tau_examples=100)
    assert math.isnan(ema.value)
    assert ema.update(3.0, examples=10) == pytest.approx(3.0)  # no pull towards zero at the start
    # one step of 20 examples decays as much as two of 10
    a, b = ExampleEMA(100), ExampleEMA(100)
    a.update(1.0, 10), a.update(5.0, 10), a.update(5.0, 10)
    b.update(1.0, 10), b.update(5.0, 20)
    assert a.value == pytest.approx(b.value)
    c = ExampleEMA(1.0)
    c.load_state_dict(a.state_dict())
    assert c.value == a.value and c.tau_examples == 100
    with pytest.raises(ValueError, match="-1"):
        ExampleEMA(-1)


@settings(deadline=None, max_examples=30)
@given(st.lists(st.floats(-5, 5), min_size=2, max_size=30))
def test_negative_single_step_estimates_are_kept(values):
    # averaging keeps negative readings (information, not an error): the EMA is a weighted mean
    ema = ExampleEMA(1e9)
    for v in values:
        ema.update(v, 1)
    assert ema.value == pytest.approx(np.mean(values), abs=1e-6)
