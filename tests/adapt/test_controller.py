"""The batch-size controller: feasible plans, growth along B_simple, hysteresis, goodput optimum, state."""

import json
import math
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trainwise.adapt import BatchPlan, BatchSizeController, StepTimeModel, adascale_gain


@given(world=st.integers(1, 8), micro=st.integers(1, 64), request=st.integers(1, 5000))
def test_plan_is_feasible_and_never_above_the_request(world, micro, request):
    controller = BatchSizeController(world, max_micro_batch_size=micro, max_batch_size=10**6, world_size=world)
    plan = controller.plan_for(request)
    assert plan.batch_size == plan.world_size * plan.accumulation_steps * plan.micro_batch_size
    assert plan.micro_batch_size <= micro
    assert plan.batch_size <= max(request, world)
    if plan.accumulation_steps > 1:
        assert plan.micro_batch_size == micro  # memory stays flat: accumulation only once the micro-batch is full


def test_plan_examples():
    controller = BatchSizeController(8, max_micro_batch_size=8, max_batch_size=256, world_size=2)
    assert controller.plan_for(10) == BatchPlan(10, 5, 1, 2)
    assert controller.plan_for(40) == BatchPlan(32, 8, 2, 2)
    assert controller.plan == BatchPlan(8, 4, 1, 2)


def test_grows_along_b_simple_with_max_growth_and_feasibility(tmp_path):
    log = tmp_path / "adapt.jsonl"
    controller = BatchSizeController(16, max_micro_batch_size=64, max_batch_size=1024, update_interval=1, log_path=log)
    actions = [controller.update(b_simple=100.0, examples=1000 * i) for i in range(1, 5)]
    # 16 -> 32 -> 64 (max_growth 2), then the target 100 is not feasible (64 < 100 < 128): hold
    assert [a["batch_size"] for a in actions] == [32, 64, 64, 64]
    assert [a["action"] for a in actions] == ["grow", "grow", "hold", "hold"]
    assert "capped by max_growth" in actions[0]["reason"]
    assert "no feasible batch" in actions[2]["reason"]
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["action"] for line in lines] == ["grow", "grow", "hold", "hold"]
    assert all(line["kind"] == "batch_decision" and line["reason"] for line in lines)
    controller.update(b_simple=400.0)  # now 128 then 256 are reachable through accumulation
    assert controller.plan == BatchPlan(128, 64, 2, 1)


def test_hysteresis_no_shrink_and_shrink():
    controller = BatchSizeController(32, max_micro_batch_size=64, max_batch_size=256, update_interval=1)
    assert controller.update(b_simple=38.0)["action"] == "hold"  # 38 < 1.25×32
    assert "already at min_batch_size" in controller.update(b_simple=4.0)["reason"]
    controller.update(b_simple=64.0)
    assert controller.batch_size == 64
    record = controller.update(b_simple=4.0)
    assert record["action"] == "hold" and "shrinking disabled" in record["reason"]
    shrinking = BatchSizeController(8, min_batch_size=32, max_micro_batch_size=64, max_batch_size=256,
                                    update_interval=1, allow_shrink=True)
    # never below min_batch_size
    assert shrinking.update(b_simple=1.0)["action"] == "hold"
    shrinking.update(b_simple=1000.0)
    assert shrinking.batch_size == 64
    record = shrinking.update(b_simple=2.0)
    assert record["action"] == "shrink" and record["batch_size"] == 32


def test_warmup_interval_and_missing_estimate():
    controller = BatchSizeController(16, max_micro_batch_size=64, max_batch_size=256, update_interval=3,
                                     warmup_examples=100)
    assert controller.update(b_simple=math.nan, examples=16) is None
    assert controller.update(b_simple=math.nan, examples=32) is None
    record = controller.update(b_simple=math.nan, examples=48)
    assert record["action"] == "hold" and "warm-up: 48 of 100" in record["reason"]
    records = [controller.update(b_simple=math.nan, examples=e) for e in (64, 80, 96, 112, 128, 144)]
    assert [r is None for r in records] == [True, True, False, True, True, False]
    assert "warm-up: 96 of 100" in records[2]["reason"]
    assert records[5]["reason"] == "no noise-scale estimate yet" and records[5]["batch_size"] == 16


def test_reads_the_monitor_in_tokens():
    monitor = SimpleNamespace(b_simple=64 * 200.0, tokens_per_example=64, examples=640)
    controller = BatchSizeController(16, max_micro_batch_size=64, max_batch_size=256, update_interval=1)
    controller.update(monitor)
    assert controller.b_simple == 200.0 and controller.examples == 640


def test_lr_factor_follows_the_rule_for_the_current_batch():
    for rule, power in (("sgd", 1.0), ("adam", 0.5)):
        controller = BatchSizeController(16, max_micro_batch_size=64, max_batch_size=256, update_interval=1, lr_rule=rule)
        assert controller.lr_factor() == 1.0
        controller.update(b_simple=80.0)
        assert controller.batch_size == 32
        assert controller.lr_factor() == pytest.approx(adascale_gain(80.0, 16, 32) ** power)
        assert controller.decisions[-1]["lr_factor"] == pytest.approx(controller.lr_factor())


def test_goodput_optimum_matches_closed_form():
    # t(B) = t0 + c·B, E(B) = (φ+B0)/(φ+B): goodput ∝ B/((t0+cB)(φ+B)) peaks at B* = sqrt(t0·φ/c)
    t0, c, phi = 0.5, 0.001, 200.0
    timings = StepTimeModel()
    for batch in (8, 64):
        timings.observe(batch, 1, t0 + c * batch)
    controller = BatchSizeController(8, max_micro_batch_size=4096, max_batch_size=4096, update_interval=1,
                                      mode="goodput", max_growth=1000.0, step_time_model=timings)
    record = controller.update(b_simple=phi)
    best = math.sqrt(t0 * phi / c)  # 316.2
    assert abs(record["target_batch_size"] - best) <= 1
    assert record["action"] == "grow" and abs(controller.batch_size - best) <= 1
    assert record["best_goodput"] >= record["goodput"]


def test_goodput_falls_back_to_noise_until_two_batch_sizes_are_timed():
    controller = BatchSizeController(8, max_micro_batch_size=64, max_batch_size=256, update_interval=1, mode="goodput")
    controller.observe_step_time(0.1)
    record = controller.update(b_simple=100.0)
    assert "following the noise scale" in record["reason"] and record["batch_size"] == 16


def test_state_round_trip_gives_the_same_future():
    def make():
        return BatchSizeController(16, max_micro_batch_size=32, max_batch_size=512, update_interval=2, mode="goodput")

    first, second = make(), make()
    series = [50.0, 80.0, 120.0, 200.0, 260.0, 300.0, 500.0, 700.0]
    for i, b_simple in enumerate(series[:4]):
        first.update(b_simple=b_simple, examples=100 * i)
        first.observe_step_time(0.01 * first.batch_size ** 0.5)
    state = json.loads(json.dumps(first.state_dict()))  # JSON-serialisable
    second.load_state_dict(state)
    assert second.state_dict() == first.state_dict()
    for i, b_simple in enumerate(series[4:]):
        a = first.update(b_simple=b_simple, examples=1000 + i)
        b = second.update(b_simple=b_simple, examples=1000 + i)
        assert a == b
        first.observe_step_time(0.01 * first.batch_size ** 0.5)
        second.observe_step_time(0.01 * second.batch_size ** 0.5)
    assert first.state_dict() == second.state_dict()


@pytest.mark.parametrize("kwargs, message", [
    (dict(base_batch_size=0), "base_batch_size must be an integer >= 1, got 0"),
    (dict(mode="fast"), "unknown mode 'fast'"),
    (dict(lr_rule="lars"), "unknown lr_rule 'lars'"),
    (dict(min_batch_size=1024), "min_batch_size <= max_batch_size"),
    (dict(noise_fraction=0), "noise_fraction must be > 0, got 0"),
    (dict(max_growth=1.0), "max_growth must be > 1, got 1.0"),
])
def test_bad_arguments_are_named(kwargs, message):
    args = dict(base_batch_size=16, max_micro_batch_size=8, max_batch_size=256) | kwargs
    with pytest.raises(ValueError, match=message):
        BatchSizeController(args.pop("base_batch_size"), **args)
