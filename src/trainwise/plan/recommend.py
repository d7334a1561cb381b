r"""A batch size and a learning rate from a measurement, scaling laws and hardware.

1. **Critical batch** ``B_crit``. From a sweep it is measured (``sweep.json``). From a noise-scale reading it is
   predicted by the reading that predicted it best on trainwise's benchmark for this optimizer family
   (:mod:`trainwise.calibration`: each predictor's ratio to swept ``B_crit`` on several tasks); the likely range is
   the reading divided by the highest and lowest ratio measured, widened by its standard error.
2. **Trade-off** ``S = S_min(1 + B_crit/B)``, ``E = E_min(1 + B/B_crit)``. The target is the loss the data budget
   ``D`` reaches at the recommended batch, so ``E_min = D/(1 + B_rec/B_crit)`` and ``S_min = E_min/B_crit``.
3. **Batch**: ``B_rec = B_crit`` (twice the fewest steps for twice the fewest examples: the knee), in whole
   sequences per device.
4. **Learning rate**: the measured run's ``ε0`` at its batch ``B0``, moved to ``B_rec`` by the rule of its
   family with the noise scale ``B_n = B_crit`` (:mod:`trainwise.optim.lr_scaling`): for SGD
   ``(1 + B_n/B0)/(1 + B_n/B_rec)`` (``ε_opt(B) = ε_max/(1 + B_n/B)``), for Adam the square-root rule up to
   ``B_n`` and flat past it. Both were chosen by ``benchmarks/plan_lr.py`` (:data:`trainwise.calibration.LR_VALIDATION`,
   quoted with the plan). It is never above the stability limit measured from ``ε_max`` when the Hessian terms
   exist. From a sweep, the tuned learning rates are interpolated to ``B_rec``. The other options (``ε_opt(B)``
   from the measured ``ε_max`` for SGD, the plain linear rule, the surge formula, published laws) are listed
   beside it. The rules assume the measured run's rate was tuned at its batch; they carry a mistuned rate along.

All arithmetic comparing a noise scale with a batch size is in examples (:mod:`trainwise.units`); the plan is
printed in the measurement's unit.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from trainwise import scaling
from trainwise._format import short as _fmt
from trainwise.optim.lr_scaling import (
    adam_noise_lr_ratio,
    noise_scale_lr_ratio,
    optimizer_family,
    scale_lr,
    stability_limit,
    surge_lr_ratio,
)
from trainwise.plan.reading import NoiseReading
from trainwise.units import BatchUnit

__all__ = ["make_plan", "choose_b_crit", "recommend_lr"]


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def choose_b_crit(reading: NoiseReading, family: str) -> dict:
    """``B_crit`` (in the reading's unit) with its likely range, the predictor used, and why."""
    if reading.b_crit_measured is not None:
        value, stderr = reading.b_crit_measured["value"], reading.b_crit_measured["stderr"]
        rel = stderr / value if _finite(stderr) else 0.0
        return {"value": value, "low": value * max(1 - 2 * rel, 0.25), "high": value * (1 + 2 * rel),
                "predictor": "swept", "source": f"measured by a sweep ({reading.window['how']}) in {reading.source_file}",
                "why": "a sweep measures B_crit directly (steps to a target loss at each batch size, LR tuned per "
                "batch); the range is ±2 standard errors of the fit", "calibration": None}
    from trainwise.calibration import best_predictor

    name, calib = best_predictor(family, set(reading.predictors))
    base = reading.predictors[name]
    rel = base["stderr"] / base["value"] if _finite(base.get("stderr")) else 0.0
    low_ratio, high_ratio, point = calib.low, calib.high, calib.geometric_mean
    label = _LABELS[name]
    rows = len(calib.rows)
    return {
        "value": base["value"] / point,
        # the calibrated range widened by the reading's own error, multiplicatively (never below zero)
        "low": base["value"] / high_ratio / (1 + rel),
        "high": base["value"] / low_ratio * (1 + rel),
        "predictor": name,
        "source": f"{label} = {_fmt(base['value'])} averaged over {_window_text(reading)} of {reading.source_file}"
        + ("" if abs(point - 1) < 0.005 else f", divided by {point:.2g}"),
        "why": f"for {family} runs, {label} was the steadiest predictor on trainwise's benchmark: it read "
        f"{low_ratio:.2g}–{high_ratio:.2g}× the swept B_crit over {rows} targets of {len(calib.settings)} task{'s' if len(calib.settings) > 1 else ''} "
        f"(geometric mean {point:.2g}; docs/critical-batch.md, Calibration); the range is widened by ×/÷ (1 + its relative "
        f"standard error, {rel:.0%})",
        "calibration": {"low": low_ratio, "high": high_ratio, "geometric_mean": point, "targets": rows,
                        "settings": list(calib.settings)},
    }


_LABELS = {"b_simple": "B_simple", "b_noise": "B_noise", "b_simple_precond": "B_simple of the Adam-preconditioned "
           "gradient", "b_noise_precond": "B_noise of the Adam-preconditioned gradient", "swept": "swept B_crit"}


def _window_text(reading: NoiseReading) -> str:
    w = reading.window
    if "first_step" in w:
        return f"steps {w.get('first_step')}–{w.get('last_step')}"
    return "the window"


def recommend_lr(reading: NoiseReading | None, rec_batch_examples: float, b_crit_examples: float, opt_name: str,
                 momentum: float, laws: dict) -> tuple[float | None, str, dict[str, float], dict]:
    """``(lr, how, options, limits)`` at the recommended batch (module docstring, step 4)."""
    family, _ = optimizer_family(opt_name)
    options: dict[str, float] = {}
    limits: dict[str, float] = {}
    lr, how = None, None
    if reading is not None and reading.tuned_lr:
        batches = sorted((float(b), v) for b, v in reading.tuned_lr.items())
        xs, ys = np.log([b for b, _ in batches]), np.log([v for _, v in batches])
        x = math.log(rec_batch_examples)
        if xs[0] <= x <= xs[-1] or len(batches) == 1:
            lr = float(np.exp(np.interp(x, xs, ys)))
            how = "the sweep's tuned learning rates, interpolated (log–log) to this batch"
        else:
            b0, lr0 = batches[0] if x < xs[0] else batches[-1]
            ratio = (noise_scale_lr_ratio if family == "sgd" else adam_noise_lr_ratio)(rec_batch_examples, b0, b_crit_examples)
            lr = lr0 * ratio
            how = f"the sweep's tuned lr {lr0:.3g} at batch {b0:g}, moved by the {family} rule beyond the swept range"
        options["sweep, tuned"] = lr
    elif reading is not None and reading.lr and reading.batch_size and _measured_family(reading) not in (None, family):
        how = (f"the measured run used {reading.optimizer}, whose learning rate does not carry over to {opt_name}; "
               "measure a run with the optimizer you will train with")
    elif reading is not None and reading.lr and reading.batch_size:
        b0, lr0 = reading.batch_size, reading.lr
        if family == "sgd":
            ratio = noise_scale_lr_ratio(rec_batch_examples, b0, b_crit_examples)
            rule = "saturating rule ε_opt(B) ∝ 1/(1 + B_n/B) (linear below B_n, flat above; McCandlish et al. 2018)"
            options["linear rule (no saturation)"] = scale_lr("linear", lr0, b0, rec_batch_examples)
        else:
            ratio = adam_noise_lr_ratio(rec_batch_examples, b0, b_crit_examples)
            rule = ("square-root rule up to B_n and flat past it (Malladi et al. 2022; the Adam-optimal rate stops "
                    "rising near the noise scale, Li et al. 2024)")
            options["surge formula ε ∝ 1/(√(B_n/B) + √(B/B_n))"] = lr0 * surge_lr_ratio(rec_batch_examples, b0,
                                                                                        b_crit_examples)
        lr = lr0 * ratio
        how = f"the measured run's lr {lr0:.3g} at {b0:g} examples × {ratio:.3g}, by the {rule} with B_n = B_crit"
        options["measured run, rescaled"] = lr
        eps = reading.eps_max_precond if family == "adam" else reading.eps_max
        if eps is not None:
            limits["stability"] = stability_limit(eps["value"], family, momentum)
            limits["eps_max"] = eps["value"]
        if family == "sgd" and reading.eps_max is not None and reading.b_noise is not None:
            b_noise_examples = reading.batch_unit.to_examples(reading.b_noise["value"])
            # torch's heavy-ball SGD steps lr/(1 − μ) per unit gradient at steady state
            options["ε_opt(B) = ε_max/(1 + B_noise/B)"] = (1 - momentum) * reading.eps_max["value"] / (
                1 + b_noise_examples / rec_batch_examples)
    for law in ("deepseek", "step_law"):
        if "lr" in laws.get(law, {}):
            options[law] = laws[law]["lr"]
    if lr is None and options:
        lr = float(np.exp(np.mean(np.log(list(options.values())))))
        how = (how + "; instead: " if how else "") + "geometric mean of " + ", ".join(options)
    if lr is None:
        return None, how or "no learning rate in the measurement and no --params/--tokens for a scaling law", options, limits
    if "stability" in limits and lr > limits["stability"]:
        how += (f"; capped at the stability limit {limits['stability']:.3g} (curvature along the gradient, "
                f"ε_max = {limits['eps_max']:.3g})")
        lr = limits["stability"]
    return lr, how, options, limits


def _measured_family(reading: NoiseReading) -> str | None:
    """The optimizer family of the measured run, or ``None`` when it is not named or has no rule."""
    try:
        return optimizer_family(reading.optimizer)[0] if reading.optimizer else None
    except ValueError:
        return None


def _round_batch(batch: float, multiple: float) -> float:
    return max(multiple, round(batch / multiple) * multiple)


def make_plan(
    reading: NoiseReading | None = None,
    *,
    params: float | None = None,
    tokens: float | None = None,
    examples: float | None = None,
    compute: float | None = None,
    devices: int = 1,
    throughput: tuple[float, str] | None = None,
    seq_len: int | None = None,
    optimizer: str | None = None,
    batch_sizes: Sequence[float] | None = None,
) -> dict:
    """Recommend a batch size and learning rate and tabulate the steps/data/time trade-off (module docstring).

    Needs a ``reading`` or ``params`` with ``tokens`` or ``compute``. Batch sizes are in the reading's unit, or in
    tokens without a reading. The data budget is ``tokens``, or ``examples`` (sequences), not both. A token budget or a throughput in a unit the reading does not count needs the
    sequence length (``seq_len``, or the reading's ``tokens_per_example``); without it the plan refuses.
    """
    if reading is None and params is None:
        raise ValueError("a plan needs a measurement (--from) or a model size (--params) with --tokens or --compute")
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ValueError(f"--devices must be a whole number >= 1, got {devices!r}")
    if seq_len is not None and (isinstance(seq_len, bool) or not _finite(seq_len) or seq_len < 1):
        raise ValueError(f"--seq-len must be a whole number >= 1 (tokens per sequence), got {seq_len!r}")
    if tokens is not None and examples is not None:
        raise ValueError("give the data budget once: --tokens or --examples, not both")
    for name, value in (("--params", params), ("--tokens", tokens), ("--examples", examples), ("--compute", compute)):
        if value is not None and (not _finite(value) or value <= 0):
            raise ValueError(f"{name} must be positive and finite, got {value!r}")
    notes: list[str] = []
    if compute is not None and tokens is None and params is not None:
        tokens = compute / (6.0 * params)
        notes.append(f"token budget from compute: D = C/(6N) = {tokens:.3g}")
    if params is not None and tokens is not None and compute is None:
        compute = 6.0 * params * tokens

    if reading is not None:
        unit = reading.batch_unit
        if seq_len and unit.tokens_per_example and abs(seq_len - unit.tokens_per_example) > 0.5:
            raise ValueError(f"--seq-len {seq_len} contradicts the measurement's tokens_per_example "
                             f"{unit.tokens_per_example:g} ({reading.source_file}); drop --seq-len or fix it")
        unit = unit.with_sequence_length(seq_len)
    else:
        unit = BatchUnit("tokens", float(seq_len)) if seq_len else None
    unit_name = unit.name if unit is not None else "tokens"
    if optimizer is not None:
        opt_name = optimizer
    elif reading is not None and reading.optimizer:
        opt_name = reading.optimizer
    else:
        opt_name = "adamw"
        if reading is not None:
            notes.append("the measurement does not name its optimizer: the plan assumes AdamW (pass --optimizer)")
    try:
        family, momentum = optimizer_family(opt_name)
    except ValueError as exc:
        if optimizer is not None:
            raise ValueError(f"--optimizer: {exc}") from None
        raise ValueError(f"{reading.source_file}: the measured run's optimizer field: {exc}; pass --optimizer to say "
                         "which one you will train with") from None
    opt_name = str(opt_name).lower()

    laws: dict[str, dict] = {}
    if tokens is not None:
        laws["step_law"] = {"batch_tokens": scaling.step_law_batch_tokens(tokens), "citation": scaling.step_law.CITATION}
        if params is not None:
            laws["step_law"]["lr"] = scaling.step_law_lr(params, tokens)
    if compute is not None:
        laws["deepseek"] = {"batch_tokens": scaling.deepseek_batch_tokens(compute), "lr": scaling.deepseek_lr(compute),
                            "citation": scaling.deepseek.CITATION, "compute": compute,
                            "note": "C = 6·N·D approximates DeepSeek's M·D (M excludes embeddings, includes attention)"}
    if params is not None and tokens is not None:
        loss = scaling.kaplan_loss(params, tokens)
        laws["kaplan"] = {"b_crit_tokens": scaling.kaplan_b_crit(loss), "loss": loss, "citation": scaling.kaplan.CITATION,
                          "note": "loss from Kaplan eq. 1.5 (WebText2, GPT-2 tokenizer): an order of magnitude"}

    # --- critical batch, in the plan's unit ---
    if reading is not None:
        b_crit = choose_b_crit(reading, family)
        if reading.b_noise is not None and reading.b_simple is not None and b_crit["predictor"] != "swept":
            ratio = reading.b_noise["value"] / reading.b_simple["value"]
            if not 0.5 <= ratio <= 2.0:
                notes.append(f"B_noise is {ratio:.2g}× B_simple in this run: the Hessian weighting moves the estimate a "
                             f"lot; the plan uses {_LABELS[b_crit['predictor']]} (the steadiest on our benchmark for "
                             f"{family}); a sweep on a small proxy (trainwise sweep) settles it")
    elif "kaplan" in laws:
        estimates = {"kaplan B_crit": laws["kaplan"]["b_crit_tokens"]}
        for law in ("deepseek", "step_law"):
            if law in laws:
                estimates[f"{law} B_opt"] = laws[law]["batch_tokens"]
        value = float(np.exp(np.mean(np.log(list(estimates.values())))))
        b_crit = {"value": value, "low": min(estimates.values()) / 1.5, "high": max(estimates.values()) * 1.5,
                  "predictor": "scaling laws", "calibration": None,
                  "source": "geometric mean of " + ", ".join(f"{k} {_fmt(v)}" for k, v in estimates.items())
                  + f" (Kaplan at L(N, D) = {laws['kaplan']['loss']:.3f} nats/token)",
                  "why": "no measurement: scaling laws fitted on other data and tokenizers; the range spans them ×/÷ 1.5"}
    else:
        raise ValueError("without a measurement the plan needs both --params and --tokens (or --compute)")

    per_example = unit.per_example if unit is not None else 1.0  # plan units per example

    def to_examples(x: float) -> float:
        return x / per_example

    # --- recommendation ---
    multiple = float(devices) * per_example
    rec_batch = _round_batch(b_crit["value"], multiple)
    rec_note = f"B_crit rounded to a multiple of {multiple:g} {unit_name} ({devices} device{'s' if devices > 1 else ''}"
    rec_note += f" × {per_example:g} tokens per sequence)" if unit_name == "tokens" and unit is not None else ")"
    lr, lr_source, lr_options, lr_limits = recommend_lr(reading, to_examples(rec_batch), to_examples(b_crit["value"]),
                                                        opt_name, momentum, laws)
    lr_validation = None
    if reading is not None and lr is not None:
        from trainwise.calibration import lr_validation_for

        lr_validation = lr_validation_for(family, "sweep" if reading.tuned_lr else "rescaled")

    # --- trade-off table ---
    crit = b_crit["value"]
    if examples is not None:
        budget = examples * per_example  # in the plan's unit
        if unit is None:
            raise ValueError("--examples needs a measurement or --seq-len to convert sequences to tokens")
        e_min = budget / (1.0 + rec_batch / crit)
        target_note = (f"target: the loss the budget of {_fmt(examples)} examples reaches at the recommended batch "
                       f"(E_min = {_fmt(e_min)} {unit_name})")
    elif tokens is not None:
        budget = tokens / unit.tokens_per("--tokens") if unit is not None and unit.name == "examples" else tokens
        e_min = budget / (1.0 + rec_batch / crit)
        target_note = (f"target: the loss the budget of {_fmt(tokens)} tokens reaches at the recommended batch "
                       f"(E_min = {_fmt(e_min)} {unit_name})")
    else:
        e_min = crit * 1000.0
        target_note = "no token budget: steps and data relative to S_min = 1000 steps"
    s_min = e_min / crit
    if batch_sizes is None:
        batch_sizes = sorted({_round_batch(crit * 2.0**k, multiple) for k in range(-4, 5)} | {rec_batch})
    per_device_rate = None
    if throughput is not None:
        rate, rate_unit = throughput
        if rate_unit == unit_name:
            per_device_rate = rate
        elif rate_unit == "tokens":  # plan in examples
            per_device_rate = rate / unit.tokens_per("--throughput " + f"{rate:g}tok/s")
        else:  # examples/s, plan in tokens
            per_device_rate = rate * per_example
    tokens_known = unit is None or unit.tokens_per_example is not None
    rows = []
    for b in batch_sizes:
        steps = s_min * (1 + crit / b)
        amount = e_min * (1 + b / crit)
        row = {"batch_size": float(b), "steps": steps, "examples": to_examples(amount),
               "tokens": (amount if unit_name == "tokens" else amount * unit.tokens_per_example) if tokens_known else None,
               "steps_over_min": 1 + crit / b, "data_over_min": 1 + b / crit,
               "knee": abs(math.log(b / crit)) < math.log(2) / 2, "recommended": b == rec_batch}
        if per_device_rate:
            seconds = amount / (per_device_rate * devices)
            row["wall_clock_h"] = seconds / 3600.0
            row["device_hours"] = seconds / 3600.0 * devices
        if params is not None and row["tokens"] is not None:
            row["flops"] = 6.0 * params * row["tokens"]
        if unit_name == "examples" and b % devices:
            row["note"] = f"not divisible by {devices} devices"
        rows.append(row)

    rec_tokens = (rec_batch if unit_name == "tokens" else rec_batch * unit.tokens_per_example) if tokens_known else None
    published = []
    for run in scaling.PUBLISHED_RUNS:
        entry = run.to_dict()
        if rec_tokens:
            entry["ratio_to_recommended"] = run.batch_tokens / rec_tokens
        published.append(entry)
    if reading is not None:
        notes.extend(reading.warnings)
        notes.append("the critical batch grows as the loss falls (Kaplan et al.: ×2 per 13% lower loss): a measurement "
                     "early in training underestimates it later; re-measure, or warm the batch size up (Merrill et al. 2025)")
    return {
        "kind": "plan",
        "unit": unit_name,
        "tokens_per_example": unit.tokens_per_example if unit is not None else None,
        "measurement": reading.to_dict() if reading else None,
        "inputs": {"params": params, "tokens": tokens, "examples": examples, "compute": compute, "devices": devices,
                   "throughput": list(throughput) if throughput else None, "seq_len": seq_len, "optimizer": opt_name,
                   "family": family, "momentum": momentum},
        "b_crit": b_crit,
        "recommendation": {"batch_size": rec_batch, "batch_examples": to_examples(rec_batch), "batch_tokens": rec_tokens,
                           "why": rec_note, "per_device": rec_batch / devices, "lr": lr, "lr_source": lr_source,
                           "lr_options": lr_options, "lr_limits": lr_limits, "lr_validation": lr_validation},
        "tradeoff": {"s_min": s_min, "e_min": e_min, "target": target_note},
        "table": rows,
        "laws": laws,
        "published_runs": published,
        "notes": notes,
    }
