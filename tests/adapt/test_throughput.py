"""The step-time model recovers known coefficients and refuses bad timings."""

import pytest

from trainwise.adapt import StepTimeModel


def test_fit_recovers_coefficients_exactly():
    model = StepTimeModel()
    truth = {"t_step": 0.05, "t_micro": 0.02, "t_example": 0.001}
    for batch, accum in [(16, 1), (64, 1), (128, 2), (256, 4)]:
        for _ in range(3):
            model.observe(batch, accum, truth["t_step"] + accum * truth["t_micro"] + batch * truth["t_example"])
    assert model.fitted
    for name, value in model.fit().items():
        assert value == pytest.approx(truth[name], abs=1e-9), name
    assert model.throughput(512, 8) == pytest.approx(512 / (0.05 + 8 * 0.02 + 0.512))


def test_non_negative_fit_and_single_configuration():
    model = StepTimeModel()
    model.observe(32, 1, 0.4)
    assert not model.fitted
    assert model.fit() == {"t_step": 0.0, "t_micro": 0.0, "t_example": pytest.approx(0.4 / 32)}
    # decreasing times with batch would need a negative per-example cost: clamped to >= 0
    model.observe(64, 1, 0.3)
    assert all(v >= 0 for v in model.fit().values())


def test_median_window_and_state_round_trip():
    model = StepTimeModel(window=3)
    for seconds in (9.0, 1.0, 1.0, 5.0):  # the first falls out of the window
        model.observe(8, 1, seconds)
    assert model.timings[(8, 1)] == [1.0, 1.0, 5.0]
    other = StepTimeModel()
    other.load_state_dict(model.state_dict())
    assert other.timings == model.timings and other.window == 3


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_timing_is_refused(seconds):
    with pytest.raises(ValueError, match="step time"):
        StepTimeModel().observe(8, 1, seconds)
