"""The plan as text: the recommendation first, then what it rests on, the trade-off table, laws and published runs."""

from __future__ import annotations

from typing import Any

from trainwise._format import short

__all__ = ["format_plan", "fmt_quantity"]

_PREDICTOR_LABELS = {"b_simple": "B_simple", "b_noise": "B_noise", "b_simple_precond": "B_simple (Adam P⁻¹g)",
                     "b_noise_precond": "B_noise (Adam P⁻¹g)"}


def fmt_quantity(value: Any, digits: int = 3) -> str:
    """``1.5k``, ``20B``; ``-`` for a missing or non-finite value (:func:`trainwise._format.short`)."""
    return short(value, digits)


_fmt = fmt_quantity


def _hours(hours: float | None) -> str:
    if hours is None:
        return "-"
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} d"


def format_plan(plan: dict) -> str:
    """The plan as readable text."""
    unit = plan["unit"]
    rec, bc = plan["recommendation"], plan["b_crit"]
    lines = []
    extra = ""
    if unit == "examples" and rec.get("batch_tokens"):
        extra = f" = {_fmt(rec['batch_tokens'])} tokens"
    elif unit == "tokens" and plan.get("tokens_per_example"):
        extra = f" = {_fmt(rec['batch_examples'])} sequences of {plan['tokens_per_example']:g}"
    lines.append(f"Recommended global batch: {_fmt(rec['batch_size'])} {unit}{extra}  "
                 f"({_fmt(rec['per_device'])} {unit} per device)")
    if rec["lr"] is not None:
        lines.append(f"Recommended learning rate: {_fmt(rec['lr'])}")
        lines.append(f"  from {rec['lr_source']}")
        validation = rec.get("lr_validation")
        if validation:
            lines.append(f"  validated: {validation}")
    else:
        lines.append(f"Recommended learning rate: none ({rec['lr_source']})")
    lines.append("")
    lines.append(f"Critical batch B_crit ≈ {_fmt(bc['value'])} {unit}  (likely {_fmt(bc['low'])}–{_fmt(bc['high'])})")
    lines.append(f"  from {bc['source']}")
    lines.append(f"  why: {bc['why']}")
    lines.append(f"  batch: {rec['why']}")
    m = plan["measurement"]
    if m and m.get("predictors"):
        readings = ", ".join(f"{_PREDICTOR_LABELS.get(k, k)} = {_fmt(v['value'])} ± {_fmt(v.get('stderr'), 2)}"
                             for k, v in m["predictors"].items())
        lines.append(f"  all readings ({unit}): {readings}")
    if rec["lr_options"] or rec.get("lr_limits"):
        lines.append("")
        lines.append("Learning-rate options at this batch:")
        for name, value in rec["lr_options"].items():
            lines.append(f"    {name:<40s} {_fmt(value)}")
        if rec.get("lr_limits", {}).get("stability"):
            lines.append(f"    {'stability limit (from ε_max)':<40s} {_fmt(rec['lr_limits']['stability'])}")
    lines.append("")
    lines.append(plan["tradeoff"]["target"])
    has_time = any("wall_clock_h" in r for r in plan["table"])
    has_flops = any("flops" in r for r in plan["table"])
    data_label = "tokens" if plan["table"][0]["tokens"] is not None else unit
    header = f"{'batch (' + unit + ')':>16s} {'steps':>9s} {'S/S_min':>8s} {data_label:>9s} {'E/E_min':>8s}"
    if has_time:
        header += f" {'wall-clock':>11s} {'device-h':>9s}"
    if has_flops:
        header += f" {'FLOPs':>9s}"
    lines.append(header)
    for r in plan["table"]:
        mark = " ← recommended" if r["recommended"] else ""
        mark += (" (knee: B_crit)" if r["recommended"] else " ← knee (B_crit)") if r["knee"] else ""
        data = r["tokens"] if r["tokens"] is not None else r["examples"]
        line = f"{_fmt(r['batch_size']):>16s} {_fmt(r['steps']):>9s} {r['steps_over_min']:>8.2f} {_fmt(data):>9s} {r['data_over_min']:>8.2f}"
        if has_time:
            line += f" {_hours(r.get('wall_clock_h')):>11s} {_fmt(r.get('device_hours')):>9s}"
        if has_flops:
            line += f" {r['flops']:>9.2e}" if r.get("flops") else f" {'-':>9s}"
        lines.append(line + mark)
    if plan["laws"]:
        lines.append("")
        lines.append("Published scaling laws for this model and budget:")
        for name, law in plan["laws"].items():
            parts = []
            if "batch_tokens" in law:
                parts.append(f"batch {_fmt(law['batch_tokens'])} tokens")
            if "b_crit_tokens" in law:
                parts.append(f"B_crit {_fmt(law['b_crit_tokens'])} tokens at L={law['loss']:.2f}")
            if "lr" in law:
                parts.append(f"lr {_fmt(law['lr'])}")
            lines.append(f"  {name:<9s} {', '.join(parts):<44s} [{law['citation']}]")
    lines.append("")
    lines.append("Published runs, for scale:")
    for run in plan["published_runs"]:
        if run["name"] in ("GPT-3 Small", "GPT-3 XL", "Llama 2 7B", "DeepSeek LLM 7B", "Chinchilla 70B"):
            continue
        ratio = f"  ({run['ratio_to_recommended']:.3g}× yours)" if "ratio_to_recommended" in run else ""
        lines.append(f"  {run['name']:<18s} {_fmt(run['params'])} params, {_fmt(run['tokens'])} tokens: batch "
                     f"{_fmt(run['batch_tokens'])} tokens ({run['batch_sequences']:.0f} × {run['seq_len']}), lr {run['lr']:.2g}{ratio}")
    if plan["notes"]:
        lines.append("")
        lines.extend(f"note: {n}" for n in plan["notes"])
    return "\n".join(lines)
