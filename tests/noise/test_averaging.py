"""The S_min-weighted average of a run's noise scale against the closed form it stands for."""

import math

import numpy as np
import pytest

from trainwise.noise.averaging import Span, checkpoint_spans, s_min_weighted_mean, step_blocks
from trainwise.sweep.fit import fit_tradeoff


def _b_noise_of_loss(loss: float) -> float:
    """A noise scale that grows ~30× as the loss falls from 3 to 1 (as it does in training)."""
    return 4.0 * math.exp(1.7 * (3.0 - loss))


def _delta_l_max(loss: float) -> float:
    return 0.002 * (loss - 0.5)


def _run(batch_size: float, target: float) -> tuple[list[float], float]:
    """McCandlish et al.'s model, deterministic: a step at batch B gains ΔL_max/(1 + B_noise/B).
    Returns the per-step noise scale along the run and the fractional steps to the target."""
    loss, values, steps = 3.0, [], 0.0
    while True:
        b_noise = _b_noise_of_loss(loss)
        gain = _delta_l_max(loss) / (1.0 + b_noise / batch_size)
        if loss - gain <= target:
            values.append(b_noise)
            return values, steps + (loss - target) / gain
        values.append(b_noise)
        loss -= gain
        steps += 1


@pytest.mark.parametrize("batch_size", [4.0, 32.0, 512.0])
def test_weighted_mean_of_any_run_recovers_the_fitted_critical_batch(batch_size):
    target = 1.2
    batch_sizes = [2.0, 8.0, 32.0, 128.0, 512.0, 4096.0]
    steps = [_run(b, target)[1] for b in batch_sizes]
    fit = fit_tradeoff(batch_sizes, steps)  # exact hyperbola in this model
    assert fit.rms_relative_residual < 0.01
    values, reached = _run(batch_size, target)
    spans = [Span(k, k + 1, v, 1.0) for k, v in enumerate(values)]
    got = s_min_weighted_mean(spans, batch_size, 0.0, reached)
    assert got["value"] == pytest.approx(fit.b_crit, rel=0.03)
    # the plain step average over-weights the noisy end of a small-batch run
    if batch_size < fit.b_crit / 4:
        assert got["unweighted"] > 1.3 * fit.b_crit


def test_ratio_of_window_means_is_the_biased_reading():
    """|G|² falls as training goes on; Σ tr(Σ)/Σ |G|² is then dominated by the first steps."""
    target, batch_size = 1.2, 32.0
    values, reached = _run(batch_size, target)
    grad_sq_norm = np.geomspace(100.0, 0.1, len(values))
    trace_sigma = np.asarray(values) * grad_sq_norm
    pooled = trace_sigma.sum() / grad_sq_norm.sum()
    blocks = step_blocks(list(range(1, len(values) + 1)), grad_sq_norm.tolist(), trace_sigma.tolist())
    weighted = s_min_weighted_mean(blocks, batch_size, 0.0, reached)["value"]
    truth = fit_tradeoff([2.0, 8.0, 32.0, 128.0, 512.0, 4096.0],
                         [_run(b, target)[1] for b in (2.0, 8.0, 32.0, 128.0, 512.0, 4096.0)]).b_crit
    assert weighted == pytest.approx(truth, rel=0.1)
    assert pooled < truth / 2


def test_step_blocks_tile_the_run_and_average_within():
    steps = list(range(1, 201))
    g = [float(s) for s in steps]
    t = [2.0 * s for s in steps]
    blocks = step_blocks(steps, g, t, growth=1.2, min_steps=5)
    assert blocks[0].start == 0 and blocks[-1].end == 200
    assert all(a.end == b.start for a, b in zip(blocks, blocks[1:]))
    assert all(b.length >= 5 for b in blocks)
    for b in blocks:
        inside = [s for s in steps if b.start < s <= b.end]
        assert b.denominator == pytest.approx(np.mean(inside))
        assert b.value == pytest.approx(2.0)
    with pytest.raises(ValueError, match="same length"):
        step_blocks([1, 2], [1.0], [1.0, 2.0])


def test_nonpositive_denominators_are_pooled_not_dropped():
    # the middle span's |G|² estimate came out negative: its true noise scale is large
    spans = [Span(0, 10, 10.0, 1.0), Span(10, 20, 50.0, -0.2), Span(20, 30, 40.0, 0.5)]
    got = s_min_weighted_mean(spans, 1e9, 0.0, 30.0)  # huge batch: weights ≈ step counts
    assert got["spans"] == 2
    # pooled with the smaller-denominator neighbour (the third): (50 + 40)/2 over (-0.2 + 0.5)/2 = 300
    assert got["value"] == pytest.approx((10 * 10 + 20 * 300) / 30, rel=1e-6)
    dropped = s_min_weighted_mean([spans[0], spans[2]], 1e9, 0.0, 30.0)["value"]
    assert got["value"] > 2 * dropped
    nothing = s_min_weighted_mean([Span(0, 10, 1.0, -1.0)], 8.0, 0.0, 10.0)
    assert math.isnan(nothing["value"])


def test_checkpoint_spans_and_window_clipping():
    spans = checkpoint_spans([(40, 8.0, 1.0), (10, 2.0, 1.0), (100, 30.0, 1.0)])
    assert [(s.start, s.end) for s in spans] == [(0.0, 25.0), (25.0, 70.0), (70.0, 100.0)]
    # the window stretches the last span to the end and clips the first
    got = s_min_weighted_mean(spans, 1e12, 5.0, 120.0)
    assert got["steps"] == pytest.approx(115.0)
    assert got["value"] == pytest.approx((20 * 2 + 45 * 8 + 50 * 30) / 115)
    with pytest.raises(ValueError, match="batch_size"):
        s_min_weighted_mean(spans, 0, 0.0, 1.0)


def test_jackknife_of_a_plain_mean_is_the_standard_error():
    from trainwise.noise.averaging import weighted_mean_with_stderr

    rng = np.random.default_rng(0)
    values = rng.normal(100.0, 10.0, size=10)
    spans = [Span(k, k + 1, v, 1.0) for k, v in enumerate(values)]
    got = weighted_mean_with_stderr(spans, None, 0.0, 10.0)
    assert got["value"] == pytest.approx(values.mean())
    # delete-one jackknife of a mean = s/sqrt(n)
    assert got["stderr"] == pytest.approx(values.std(ddof=1) / math.sqrt(10), rel=1e-9)
    assert math.isnan(weighted_mean_with_stderr(spans[:2], None, 0.0, 2.0)["stderr"])


def test_measure_summary_weights_checkpoints_like_the_sweep():
    from trainwise.noise.run import summarize_checkpoints

    def reading(step, value, grad_sq_norm=2.0):
        return {"step": step, "b_simple": {"value": value, "stderr": 10.0, "n": 8},
                "trace_sigma": {"value": value * grad_sq_norm}, "grad_sq_norm": {"value": grad_sq_norm}}

    checkpoints = [reading(0, 5.0), reading(50, 100.0), reading(150, 300.0)]
    summary = summarize_checkpoints(checkpoints, [], batch_size=100)
    # step 0 is left out; step 50 stands for steps 0–100 (weight 100/(1 + 1)), step 150 for 100–150 (50/(1 + 3))
    assert summary["b_simple"]["value"] == pytest.approx((50 * 100 + 12.5 * 300) / 62.5)
    assert summary["b_simple"]["stderr"] == pytest.approx(math.hypot(50 * 10, 12.5 * 10) / 62.5)
    assert summarize_checkpoints(checkpoints, [])["b_simple"]["value"] == pytest.approx((100 * 100 + 50 * 300) / 150)


def test_measure_summary_pools_a_checkpoint_whose_gradient_norm_came_out_negative():
    """A checkpoint with |G|² < 0 is pooled with its neighbour (numerators and denominators, length-weighted),
    never dropped and never averaged as a ratio; a window whose pooled denominator stays negative is not resolved."""
    from trainwise.noise.run import summarize_checkpoints

    def reading(step, trace_sigma, grad_sq_norm):
        return {"step": step, "trace_sigma": {"value": trace_sigma}, "grad_sq_norm": {"value": grad_sq_norm},
                "b_simple": {"value": trace_sigma / grad_sq_norm, "stderr": 10.0}}

    checkpoints = [reading(0, 1.0, 1.0), reading(50, 200.0, 2.0), reading(150, 600.0, 2.0), reading(250, 300.0, -1.0)]
    summary = summarize_checkpoints(checkpoints, [], batch_size=100)
    # spans: [0, 100] B̂ = 100; [100, 200] and [200, 250] pooled: tr Σ (600·100 + 300·50)/150 = 500,
    # |G|² (2·100 − 1·50)/150 = 1, B̂ = 500; weights 100/(1 + 1) = 50 and 150/(1 + 5) = 25
    assert summary["b_simple"]["value"] == pytest.approx((50 * 100 + 25 * 500) / 75)
    assert summary["b_simple"]["stderr"] is None  # a reading without a positive denominator has no error to propagate
    broken = [reading(0, 1.0, 1.0), reading(50, 200.0, -2.0), reading(150, 600.0, -2.0)]
    assert summarize_checkpoints(broken, [], batch_size=100)["b_simple"]["value"] is None
