import json
import math

import numpy as np
import pytest

from trainwise.calibration import CALIBRATION
from trainwise.plan import (
    format_plan,
    make_plan,
    parse_quantity,
    parse_throughput,
    read_measurement,
    read_noise_jsonl,
)


def write_noise_jsonl(path, *, steps=200, grad_sq_norm=2.0, trace_sigma=600.0, lr=3e-4, batch=64, tokens_per_example=512,
                      hessian=None, lr_decay=False, loss_slope=0.002, seed=0):
    """A monitor log in the docs/formats.md format with known |G|² and tr(Σ) per example (``trace_sigma``), written
    the way the monitor writes a token-unit log: batch-size–like fields × ``tokens_per_example``."""
    rng = np.random.default_rng(seed)
    lines = [{"kind": "meta", "trainwise_version": "0.1.0", "source": "per_example", "unit": "tokens",
              "tokens_per_example": tokens_per_example, "ema_examples": 1000, "optimizer": "adamw"}]
    for step in range(1, steps + 1):
        g = grad_sq_norm + rng.normal(0, 0.2 * grad_sq_norm)
        t = trace_sigma + rng.normal(0, 0.2 * trace_sigma)
        step_lr = lr * (0.01 if lr_decay and step > steps // 2 else 1.0)
        lines.append({"kind": "step", "step": step, "examples": step * batch, "tokens": step * batch * tokens_per_example,
                      "batch_size": batch, "b_small": 1, "grad_sq_norm": g, "trace_sigma": t * tokens_per_example,
                      "grad_sq_norm_ema": g, "trace_sigma_ema": t * tokens_per_example,
                      "b_simple": t / g * tokens_per_example, "lr": step_lr,
                      "temperature": step_lr / batch, "loss": 5.0 - loss_slope * step})
    for step, (ghg, ths) in (hessian or {}).items():
        lines.append({"kind": "hessian", "step": step, "examples": step * batch, "unit": "examples",
                      "ghg": {"value": ghg, "stderr": 0.0}, "trace_h_sigma": {"value": ths, "stderr": 0.0},
                      "b_noise": {"value": ths / ghg, "stderr": 1.0}, "eps_max": {"value": 0.1, "stderr": 0.01}})
    lines.insert(5, {"kind": "skip", "step": 4, "reason": "non_finite_gradient"})
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def test_units():
    assert parse_quantity("20B") == 20e9
    assert parse_quantity("350M") == 350e6
    assert parse_quantity("1e21 FLOPs") == 1e21
    assert parse_quantity("3.2M tokens") == 3.2e6
    assert parse_throughput("14000tok/s") == (14000.0, "tokens")
    assert parse_throughput("14k tokens/s") == (14000.0, "tokens")
    assert parse_throughput("120 ex/s") == (120.0, "examples")
    with pytest.raises(ValueError, match="'20 bananas'"):
        parse_quantity("20 bananas")
    with pytest.raises(ValueError, match="'-5'"):
        parse_quantity("-5")


def test_noise_jsonl_window_average_in_tokens(tmp_path):
    path = write_noise_jsonl(tmp_path / "noise.jsonl")
    reading = read_noise_jsonl(path)
    # B_simple = tr(Σ)/|G|² = 300 examples = 153,600 tokens
    assert reading.unit == "tokens"
    assert reading.b_simple["value"] == pytest.approx(300 * 512, rel=0.05)
    assert 0 < reading.b_simple["stderr"] < 0.05 * reading.b_simple["value"]
    assert reading.window["first_step"] == 1 and reading.window["last_step"] == 200
    assert any("not measured" in w for w in reading.warnings)  # the skip record is reported
    narrow = read_noise_jsonl(path, window="100:150")
    assert narrow.window["steps"] == 51


@pytest.mark.parametrize("tokens_per_example", [None, 128])
def test_noise_jsonl_steps_weighted_towards_the_infinite_batch_path(tmp_path, tokens_per_example):
    """Half the steps at B̂ = 50, half at B̂ = 450, run at B = 50: weights 1/(1 + B̂/B) = 1/2 and 1/10, so the
    reading is (100·½·50 + 100·⅒·450)/(100·½ + 100·⅒) = 116.7 — not the ratio of means (dominated by the large
    early |G|²) nor the plain step mean (250)."""
    tpe = tokens_per_example or 1
    unit = {"unit": "tokens", "tokens_per_example": tpe} if tokens_per_example else {"unit": "examples"}
    lines = [{"kind": "meta", "source": "per_example", **unit}]
    for step in range(1, 201):
        g, b_hat = (10.0, 50.0) if step <= 100 else (0.5, 450.0)
        lines.append({"kind": "step", "step": step, "batch_size": 50, "grad_sq_norm": g, "trace_sigma": g * b_hat * tpe,
                      "lr": 1e-3, "loss": 3.0 - 0.002 * step})
    # Hessian readings at steps 50 and 150 stand for the halves (each record in the log's unit, as measure writes)
    for step, (ghg, ths) in ((50, (2.0, 100.0)), (150, (0.1, 45.0))):
        lines.append({"kind": "hessian", "step": step, **unit, "ghg": {"value": ghg, "stderr": 0.0},
                      "trace_h_sigma": {"value": ths * tpe, "stderr": 0.0},
                      "b_noise": {"value": ths / ghg * tpe, "stderr": 0.0}})
    path = tmp_path / "noise.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    reading = read_noise_jsonl(path)
    # per-step values are pooled in blocks of ~10% of the step; the one straddling step 100 mixes the halves
    assert reading.b_simple["value"] == pytest.approx(7000 / 60 * tpe, rel=0.03)
    assert reading.b_simple["unweighted"] == pytest.approx(250.0 * tpe, rel=0.03)
    assert reading.b_noise["value"] == pytest.approx(7000 / 60 * tpe, rel=1e-9)  # (the spans split at step 100 exactly)
    ratio_of_means = (100 * 10 * 50 + 100 * 0.5 * 450) / (100 * 10 + 100 * 0.5)  # 69: what the pooled ratio gives
    assert reading.b_simple["value"] > 1.5 * ratio_of_means * tpe


def test_plan_from_b_simple_uses_calibration_and_budget(tmp_path):
    reading = read_measurement(write_noise_jsonl(tmp_path / "noise.jsonl"))
    plan = make_plan(reading, params=350e6, tokens=20e9, devices=8, throughput=parse_throughput("14000tok/s"))
    b_crit = plan["b_crit"]["value"]
    point = CALIBRATION["adam"]["b_simple"].geometric_mean
    assert b_crit == pytest.approx(reading.b_simple["value"] / point)
    assert plan["b_crit"]["low"] < b_crit < plan["b_crit"]["high"]
    rec = plan["recommendation"]
    assert rec["batch_size"] % (8 * 512) == 0  # whole sequences on every device
    rec_row = next(r for r in plan["table"] if r["recommended"])
    assert rec_row["tokens"] == pytest.approx(20e9)  # the budget is spent at the recommended batch
    for row in plan["table"]:
        # (S/S_min - 1)(E/E_min - 1) = 1 and E = B·S
        assert (row["steps_over_min"] - 1) * (row["data_over_min"] - 1) == pytest.approx(1.0)
        assert row["tokens"] == pytest.approx(row["batch_size"] * row["steps"])  # batch in tokens
        assert row["examples"] == pytest.approx(row["tokens"] / 512)  # sequences of 512
        assert row["wall_clock_h"] == pytest.approx(row["tokens"] / (14000 * 8) / 3600)
        assert row["flops"] == pytest.approx(6 * 350e6 * row["tokens"])
    # Adam: the measured LR moved by the square root up to B_n = B_crit, flat past it (in examples)
    b, b0, bn = rec["batch_size"] / 512, 64, b_crit / 512
    assert rec["lr"] == pytest.approx(3e-4 * math.sqrt(min(b, bn) / min(b0, bn)))
    surge = (math.sqrt(bn / b0) + math.sqrt(b0 / bn)) / (math.sqrt(bn / b) + math.sqrt(b / bn))
    assert rec["lr_options"]["surge formula ε ∝ 1/(√(B_n/B) + √(B/B_n))"] == pytest.approx(3e-4 * surge)
    names = {r["name"] for r in plan["published_runs"]}
    assert {"GPT-3 175B", "PaLM 540B", "Llama 3 405B", "DeepSeek LLM 67B"} <= names
    text = format_plan(plan)
    assert "recommended" in text and "B_crit" in text and "GPT-3 175B" in text


def test_plan_shows_b_noise_from_hessian_records_beside_b_simple(tmp_path):
    path = write_noise_jsonl(tmp_path / "noise.jsonl", hessian={50: (1.0, 100.0), 150: (3.0, 200.0)})
    reading = read_measurement(path)
    # readings stand for steps 0-100 (B̂ = 100) and 100-200 (B̂ = 66.7), weighted by 1/(1 + B̂/64), in tokens
    w1, w2 = 1 / (1 + 100 / 64), 1 / (1 + (200 / 3) / 64)
    assert reading.b_noise["value"] == pytest.approx((w1 * 100 + w2 * 200 / 3) / (w1 + w2) * 512)
    plan = make_plan(reading, tokens=1e9)
    # for Adam B_simple's worst benchmark target was nearer 1 than B_noise's, so B_simple is the estimate
    assert plan["b_crit"]["predictor"] == "b_simple"
    assert plan["b_crit"]["value"] == pytest.approx(reading.b_simple["value"] / CALIBRATION["adam"]["b_simple"].geometric_mean)
    assert "B_simple" in plan["b_crit"]["source"]
    assert plan["measurement"]["predictors"]["b_noise"]["value"] == pytest.approx(reading.b_noise["value"])
    # B_noise ≈ 41.7k tokens vs B_simple 153.6k: 0.27×, outside 0.5–2×, so the plan says so
    assert any("B_noise" in n and "steadiest" in n for n in plan["notes"])
    assert "B_noise" in format_plan(plan)


def test_low_noise_probe_warnings(tmp_path):
    decayed = read_measurement(write_noise_jsonl(tmp_path / "a.jsonl", lr_decay=True))
    assert any("learning rate changed" in w for w in decayed.warnings)
    flat = read_measurement(write_noise_jsonl(tmp_path / "b.jsonl", loss_slope=0.0))
    assert any("hardly moved" in w for w in flat.warnings)
    huge = read_measurement(write_noise_jsonl(tmp_path / "c.jsonl", batch=20000))
    assert any("low-noise" in w for w in huge.warnings)
    fine = read_measurement(write_noise_jsonl(tmp_path / "d.jsonl"))
    assert not any("low-noise" in w or "hardly" in w or "changed" in w for w in fine.warnings)


def test_measure_json_reader(tmp_path):
    data = {"meta": {"task": "char-gpt", "batch_size": 32, "lr": 2e-3, "optimizer": "adamw", "unit": "examples",
                     "tokens_per_example": 64, "steps": 100},
            "checkpoints": [{"step": 50, "examples": 1600, "loss": 2.5, "lr": 2e-3, "b_simple": {"value": 100, "stderr": 5}},
                            {"step": 100, "examples": 3200, "loss": 2.3, "lr": 2e-3, "b_simple": {"value": 140, "stderr": 5}}],
            "summary": {"window": {"first_step": 50, "last_step": 100, "checkpoints": 2},
                        "b_simple": {"value": 120.0, "stderr": 10.0}, "b_noise": {"value": 60.0, "stderr": 6.0}}}
    path = tmp_path / "measure.json"
    path.write_text(json.dumps(data))
    reading = read_measurement(tmp_path)  # a directory holding measure.json
    assert reading.kind == "measure.json" and reading.b_noise["value"] == 60.0
    plan = make_plan(reading, seq_len=64)
    assert plan["unit"] == "examples"
    assert plan["b_crit"]["value"] == pytest.approx(120.0 / CALIBRATION["adam"]["b_simple"].geometric_mean)
    assert plan["measurement"]["predictors"]["b_noise"]["value"] == pytest.approx(60.0)
    assert plan["recommendation"]["batch_tokens"] == pytest.approx(plan["recommendation"]["batch_size"] * 64)


def test_plan_without_measurement_uses_laws():
    plan = make_plan(None, params=350e6, tokens=20e9, devices=8, seq_len=2048)
    assert set(plan["laws"]) == {"step_law", "deepseek", "kaplan"}
    values = [plan["laws"]["kaplan"]["b_crit_tokens"], plan["laws"]["deepseek"]["batch_tokens"],
              plan["laws"]["step_law"]["batch_tokens"]]
    assert plan["b_crit"]["value"] == pytest.approx(math.exp(np.mean(np.log(values))))
    assert plan["recommendation"]["lr"] == pytest.approx(math.sqrt(plan["laws"]["deepseek"]["lr"] * plan["laws"]["step_law"]["lr"]))
    with pytest.raises(ValueError, match="--params"):
        make_plan(None)


def test_malformed_inputs_are_named(tmp_path):
    bad = tmp_path / "noise.jsonl"
    bad.write_text('{"kind": "meta"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2"):
        read_measurement(bad)
    nokind = tmp_path / "n2.jsonl"
    nokind.write_text('{"step": 1}\n')
    with pytest.raises(ValueError, match="kind"):
        read_measurement(nokind)
    with pytest.raises(FileNotFoundError, match="nope"):
        read_measurement(tmp_path / "nope.jsonl")
    path = write_noise_jsonl(tmp_path / "ok.jsonl")
    with pytest.raises(ValueError, match="'5:x'"):
        read_noise_jsonl(path, window="5:x")


def test_reads_the_monitor_log_the_noise_core_writes(tmp_path):
    from trainwise.noise import NoiseScaleMonitor
    from trainwise.tasks import get_task

    task = get_task("digits-mlp")
    model = task.make_model(seed=0)
    opt = task.make_optimizer(model)
    monitor = NoiseScaleMonitor(model, source="per_example", log_path=tmp_path / "noise.jsonl", optimizer=opt,
                                meta={"task": "digits-mlp", "optimizer": "adamw"})
    stream = task.batches(32, seed=0)
    steps = []
    for _ in range(40):
        loss = task.loss_fn(model, next(stream)).mean()
        opt.zero_grad()
        loss.backward()
        steps.append(monitor.step(batch_size=32, loss=float(loss.detach())))
        opt.step()
    monitor.close()
    reading = read_measurement(tmp_path / "noise.jsonl")
    inside = [r for r in steps if r is not None and r["step"] >= reading.window["first_step"]]
    from trainwise.noise.averaging import s_min_weighted_mean, step_blocks

    blocks = step_blocks([r["step"] for r in inside], [r["grad_sq_norm"] for r in inside], [r["trace_sigma"] for r in inside])
    expected = s_min_weighted_mean(blocks, 32, inside[0]["step"] - 1, inside[-1]["step"])["value"]
    assert reading.unit == "examples" and reading.lr == pytest.approx(task.default_lr)
    assert reading.b_simple["value"] == pytest.approx(expected)
    plan = make_plan(reading, seq_len=None)
    assert plan["recommendation"]["batch_size"] >= 1


def test_a_learning_rate_does_not_carry_over_to_another_optimizer_family(tmp_path):
    reading = read_measurement(write_noise_jsonl(tmp_path / "noise.jsonl"))  # measured with AdamW
    plan = make_plan(reading, tokens=1e9, optimizer="sgd")
    assert plan["recommendation"]["lr"] is None
    assert "does not carry over" in plan["recommendation"]["lr_source"]
    same = make_plan(reading, tokens=1e9, optimizer="adam")
    assert same["recommendation"]["lr"] is not None


def test_a_resumed_log_that_repeats_steps_is_read_once_with_a_note(tmp_path):
    path = write_noise_jsonl(tmp_path / "noise.jsonl", steps=60)
    once = read_measurement(path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + [line for line in lines if '"kind": "step"' in line][30:]) + "\n")
    twice = read_measurement(path)
    assert twice.b_simple["value"] == pytest.approx(once.b_simple["value"])
    assert twice.window["steps"] == once.window["steps"]
    assert any("more than once" in note for note in twice.warnings)
