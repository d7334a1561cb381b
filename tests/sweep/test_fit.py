import numpy as np
import pytest

from trainwise.sweep.fit import fit_tradeoff


def test_fit_recovers_known_parameters_from_noisy_synthetic_sweeps():
    s_min, e_min = 300.0, 300.0 * 64  # B_crit = 64
    batch = 2.0 ** np.arange(1, 12)
    rng = np.random.default_rng(0)
    pulls = []
    for _ in range(200):
        steps = s_min * (1 + 64 / batch) * np.exp(rng.normal(0, 0.05, size=batch.size))
        fit = fit_tradeoff(batch, steps)
        pulls.append((fit.b_crit - 64) / fit.b_crit_stderr)
        assert fit.b_crit == pytest.approx(64, rel=0.25)
    pulls = np.array(pulls)
    # the standard error is calibrated: pulls have mean ~0 and spread ~1
    assert abs(pulls.mean()) < 0.3
    assert 0.7 < pulls.std() < 1.4


def test_fit_exact_and_tradeoff_curve():
    batch = [8, 32, 128, 512]
    steps = [50 * (1 + 100 / b) for b in batch]
    fit = fit_tradeoff(batch, steps, target=0.5)
    assert fit.s_min == pytest.approx(50) and fit.e_min == pytest.approx(5000) and fit.b_crit == pytest.approx(100)
    assert fit.b_crit_stderr == pytest.approx(0, abs=1e-6)
    examples = fit.examples_at(np.array(batch))
    np.testing.assert_allclose((fit.steps_at(batch) / fit.s_min - 1) * (examples / fit.e_min - 1), 1.0)
    assert fit.to_dict()["target"] == 0.5


def test_fit_rejects_bad_input_and_warns_on_non_hyperbola():
    with pytest.raises(ValueError, match="nan"):
        fit_tradeoff([1, 2, 4], [3, float("nan"), 1])
    with pytest.raises(ValueError, match="distinct"):
        fit_tradeoff([4, 4], [10, 11])
    with pytest.warns(RuntimeWarning, match="do not follow"):
        fit = fit_tradeoff([4, 8, 16], [10, 20, 40])  # steps growing with B
    assert fit.warnings
