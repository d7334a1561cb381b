import warnings

import pytest

from trainwise.optim import SurgeWarning, adam_sqrt_scaling, check_surge, linear_scaling, sqrt_scaling


def test_linear_and_sqrt_rules():
    assert linear_scaling(0.1, 256, 1024) == pytest.approx(0.4)
    assert sqrt_scaling(1e-3, 256, 1024) == pytest.approx(2e-3)
    assert sqrt_scaling(1e-3, 1024, 256) == pytest.approx(5e-4)


def test_malladi_adam_rule():
    hp = adam_sqrt_scaling(1e-3, 100, 400, betas=(0.9, 0.999), eps=1e-8)
    assert hp.lr == pytest.approx(2e-3)
    assert hp.betas == pytest.approx((0.6, 0.996))  # 1 − 4·0.1, 1 − 4·0.001
    assert hp.eps == pytest.approx(5e-9)
    # scaling down then up returns the original
    back = adam_sqrt_scaling(hp.lr, 400, 100, betas=hp.betas, eps=hp.eps)
    assert back.lr == pytest.approx(1e-3) and back.betas == pytest.approx((0.9, 0.999)) and back.eps == pytest.approx(1e-8)


def test_rule_out_of_range_raises_with_numbers():
    with pytest.raises(ValueError, match="κ\\(1 − β1\\) = 20"):
        adam_sqrt_scaling(1e-3, 100, 2000, betas=(0.9, 0.999))


@pytest.mark.parametrize("bad", [0, -3, float("nan"), "x"])
def test_bad_batch_sizes(bad):
    with pytest.raises(ValueError, match="new_batch_size"):
        linear_scaling(0.1, 32, bad)


def test_surge_warning():
    with pytest.warns(SurgeWarning, match="exceeds the measured noise scale 500.*crosses"):
        assert check_surge(1000, 500.0, base_batch_size=256)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not check_surge(256, 500.0)
    with pytest.warns(SurgeWarning):
        adam_sqrt_scaling(1e-3, 256, 1024, noise_scale=300.0)
    with pytest.warns(RuntimeWarning, match="not positive"):
        assert not check_surge(256, -20.0)
    with pytest.raises(ValueError, match="NaN"):
        check_surge(256, float("nan"))
