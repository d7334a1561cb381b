import math
import pickle

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from trainwise.optim import Constant, CosineDecay, LinearDecay, WarmupStableDecay, make_schedule, to_lambda_lr

SCHEDULES = [
    Constant(warmup_steps=5),
    LinearDecay(100, warmup_steps=10, min_ratio=0.1),
    CosineDecay(100, warmup_steps=10, min_ratio=0.1),
    WarmupStableDecay(100, warmup_steps=10, decay_fraction=0.2, min_ratio=0.1),
    WarmupStableDecay(100, warmup_steps=10, decay_fraction=0.2, decay_shape="1-sqrt"),
    WarmupStableDecay(100, decay_shape="cosine"),
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
def test_contract_bounded_warmup_and_floor(schedule):
    values = [schedule(s) for s in range(150)]
    assert all(0.0 <= v <= 1.0 for v in values)
    warmup = schedule.warmup_steps
    for s in range(warmup):
        assert values[s] == pytest.approx((s + 1) / warmup)
    floor = getattr(schedule, "min_ratio", 1.0)
    if not isinstance(schedule, Constant):
        assert values[100] == pytest.approx(floor) and values[149] == pytest.approx(floor)
        assert all(b <= a + 1e-12 for a, b in zip(values[warmup:], values[warmup + 1:]))  # non-increasing after warm-up
    assert pickle.loads(pickle.dumps(schedule))(37) == schedule(37)


def test_closed_forms():
    cos = CosineDecay(110, warmup_steps=10, min_ratio=0.0)
    assert cos(60) == pytest.approx(0.5)  # half way through the decay
    assert cos(35) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))
    lin = LinearDecay(110, warmup_steps=10, min_ratio=0.2)
    assert lin(60) == pytest.approx(0.6)
    wsd = WarmupStableDecay(100, warmup_steps=10, decay_fraction=0.1)
    assert wsd.decay_start == 90 and wsd(89) == 1.0 and wsd(95) == pytest.approx(0.5)


@given(st.integers(min_value=100, max_value=10_000))
def test_cosine_never_below_floor_after_warmup(step):
    assert CosineDecay(1000, 100, 0.05)(step) >= 0.05 - 1e-12


@pytest.mark.parametrize("bad", [
    lambda: CosineDecay(10, warmup_steps=20), lambda: LinearDecay(0), lambda: CosineDecay(10, min_ratio=1.5),
    lambda: WarmupStableDecay(100, warmup_steps=95, decay_fraction=0.1), lambda: WarmupStableDecay(100, decay_shape="exp"),
    lambda: Constant(-1), lambda: make_schedule("triangle", 10), lambda: CosineDecay(10)(-1),
])
def test_invalid_arguments_raise(bad):
    with pytest.raises(ValueError):
        bad()


def test_lambda_lr_adapter_and_state_dict_round_trip():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.5)
    schedule = make_schedule("cosine", 20, warmup_steps=4, min_ratio=0.1)
    scheduler = to_lambda_lr(opt, schedule)
    seen = []
    for step in range(12):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    assert seen == pytest.approx([0.5 * schedule(s) for s in range(12)])
    state = scheduler.state_dict()
    opt2 = torch.optim.SGD([param], lr=0.5)
    scheduler2 = to_lambda_lr(opt2, make_schedule("cosine", 5))  # LambdaLR restores the same kind of schedule
    scheduler2.load_state_dict(state)
    assert scheduler2.lr_lambdas[0] == schedule
