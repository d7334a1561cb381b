import math

import numpy as np
import pytest

from trainwise import theory


def _quadratic_loss_decrease(eps, batch, grad_sq_norm, ghg, trace_h_sigma):
    """Expected decrease of the second-order model, ε|G|² − ½ε²(GᵀHG + tr(HΣ)/B)."""
    return eps * grad_sq_norm - 0.5 * eps**2 * (ghg + trace_h_sigma / batch)


@pytest.mark.parametrize("batch", [1.0, 7.0, 100.0, 1e5])
def test_eps_opt_maximises_the_second_order_model(batch):
    grad_sq_norm, ghg, trace_h_sigma = 2.0, 5.0, 300.0
    e_max = theory.eps_max(grad_sq_norm, ghg)
    bn = theory.b_noise(trace_h_sigma, ghg)
    eps = theory.eps_opt(batch, e_max, bn)
    grid = np.linspace(0, 2 * e_max, 20001)
    best = grid[np.argmax(_quadratic_loss_decrease(grid, batch, grad_sq_norm, ghg, trace_h_sigma))]
    assert eps == pytest.approx(best, abs=2 * e_max / 20000)
    dl = theory.delta_l_opt(batch, theory.delta_l_max(grad_sq_norm, ghg), bn)
    assert dl == pytest.approx(_quadratic_loss_decrease(eps, batch, grad_sq_norm, ghg, trace_h_sigma), rel=1e-12)


def test_tradeoff_identities():
    s_min, e_min = 120.0, 9600.0
    bc = theory.b_crit(s_min, e_min)
    assert bc == 80.0
    batch = np.array([1.0, 10.0, 80.0, 1000.0])
    steps = theory.steps_at(batch, s_min, bc)
    examples = theory.examples_at(batch, e_min, bc)
    np.testing.assert_allclose(examples, batch * steps)
    np.testing.assert_allclose((steps / s_min - 1) * (examples / e_min - 1), 1.0)
    np.testing.assert_allclose(theory.steps_examples_tradeoff(examples, s_min, e_min), steps)
    eff = theory.training_efficiency(80.0, bc)
    assert eff == {"steps_over_min": 2.0, "examples_over_min": 2.0}
    assert theory.s_min_from(steps, batch, bc) == pytest.approx(np.full(4, s_min))
    assert theory.e_min_from(examples, batch, bc) == pytest.approx(np.full(4, e_min))


def test_temperature_and_bad_input():
    assert theory.temperature(0.1, 10) == pytest.approx(0.01)
    assert theory.b_noise_at_temperature(100.0, 1e-3, 1e-4) == pytest.approx(1000.0)
    with pytest.raises(ValueError, match="-3"):
        theory.steps_at(-3.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="nan"):
        theory.b_simple(1.0, math.nan)
    with pytest.raises(ValueError, match="E_min"):
        theory.steps_examples_tradeoff(5.0, 1.0, 10.0)
