"""AdaScale gain, statistical efficiency and LR rules against their defining formulas."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trainwise.adapt import adascale_gain, lr_multiplier, statistical_efficiency

positive = st.floats(min_value=1e-3, max_value=1e4)


@given(trace_sigma=positive, grad_sq=positive, base=st.integers(1, 512), scale=st.floats(1.0, 64.0))
def test_gain_matches_johnson_et_al_definition(trace_sigma, grad_sq, base, scale):
    # r(s) = (tr(Σ)/B0 + |G|²) / (tr(Σ)/(s·B0) + |G|²), written with the raw quantities
    want = (trace_sigma / base + grad_sq) / (trace_sigma / (scale * base) + grad_sq)
    got = adascale_gain(trace_sigma / grad_sq, base, scale * base)
    assert got == pytest.approx(want, rel=1e-9)
    assert 1.0 - 1e-12 <= got <= scale * (1 + 1e-12)
    assert statistical_efficiency(trace_sigma / grad_sq, base, scale * base) == pytest.approx(got / scale, rel=1e-9)


def test_gain_limits_and_lr_rules():
    assert adascale_gain(0.0, 16, 64) == pytest.approx(1.0)  # no noise: a bigger batch is worth one step
    assert adascale_gain(1e12, 16, 64) == pytest.approx(4.0, rel=1e-6)  # pure noise: linear
    assert adascale_gain(-5.0, 16, 64) == pytest.approx(1.0)  # a negative estimate is treated as no noise
    gain = adascale_gain(48.0, 16, 64)  # 4·64/112
    assert gain == pytest.approx(4 * 64 / 112)
    assert lr_multiplier("sgd", 48.0, 16, 64) == pytest.approx(gain)
    assert lr_multiplier("adam", 48.0, 16, 64) == pytest.approx(math.sqrt(gain))
    assert lr_multiplier("none", 48.0, 16, 64) == 1.0


@pytest.mark.parametrize("call, message", [
    (lambda: lr_multiplier("lamb", 1.0, 1, 2), "unknown lr rule 'lamb'"),
    (lambda: adascale_gain(1.0, 0, 2), "base_batch_size must be > 0, got 0"),
    (lambda: adascale_gain(1.0, 4, -2), "batch_size must be > 0, got -2"),
    (lambda: adascale_gain(float("nan"), 4, 8), "b_simple is NaN"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        call()
