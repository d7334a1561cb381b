"""Plan a training run: a batch size and a learning rate from a noise-scale measurement, scaling laws and hardware.

The chain (SCIENCE.md §1, §3):

1. **Read the noise scale** over a window of a run (``noise.jsonl`` of the monitor or ``measure.json`` of
   ``trainwise measure``). The per-step unbiased ``tr(Σ)`` and ``|G|²`` are gathered into short blocks of
   consecutive steps (``B_simple`` per block is the ratio of the block means), the Hessian readings each stand
   for the steps nearest to them, and the window's value is the mean over steps weighted by
   ``1/(1 + B̂/B)`` (:mod:`trainwise.noise.averaging`: ``B_crit = E_min/S_min`` is the mean noise scale over the
   steps of the infinite-batch path, which a run at batch ``B`` visits ``1 + B_noise/B`` times as slowly). Its
   uncertainty is a jackknife over ten stretches of the window.
2. **Critical batch** ``B_crit``: the paper's prediction is ``B_crit ≈ B_noise``. On trainwise's benchmark
   (``benchmarks/critical_batch.py``: a sweep measures ``B_crit`` directly on four task settings) the averages
   above put ``B_simple`` at 0.6–1.9× the measured ``B_crit`` on every optimization-limited target and ``B_noise``
   at 0.32–2.3× (low on the character LM), so the plan uses ``B_crit ≈ B_simple``, range 0.6–2.4× (which also
   covers SCIENCE.md §1's 1.7–2.4× for a plain step average), and shows ``B_noise`` beside it when measured.
   Runs that look like low-noise probes (tiny learning rate, a batch far above the noise scale, a decaying
   learning rate) read 10–100× high and are flagged.
3. **Trade-off** ``S = S_min(1 + B_crit/B)``, ``E = E_min(1 + B/B_crit)``. The target is the loss the token budget
   ``D`` reaches at the recommended batch, so ``E_min = D/(1 + B_rec/B_crit)``, ``S_min = E_min/B_crit``; for each
   batch size the table gives steps, tokens, wall-clock ``E/(throughput·devices)``, and compute ``6·N·E``.
4. **Recommendation**: ``B_rec = B_crit`` (twice the minimum steps for twice the minimum data: the knee), rounded
   to whole sequences per device; learning rate: the measured run's, rescaled to ``B_rec`` by the square-root
   rule for Adam or the linear rule for SGD (capped at ``B_noise`` for Adam, whose optimal LR peaks there;
   Li et al. 2024), beside DeepSeek's and Step Law's.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from trainwise import scaling

__all__ = [
    "parse_quantity",
    "parse_throughput",
    "NoiseReading",
    "read_noise_jsonl",
    "read_measure_json",
    "read_measurement",
    "make_plan",
    "format_plan",
    "B_SIMPLE_OVER_B_CRIT",
    "B_NOISE_OVER_B_CRIT",
    "BENCHMARK_RATIOS",
]

#: what benchmarks/critical_batch.py measured with this weighting, on the optimization-limited targets of its four
#: settings (digits MLP, teacher–student, char-GPT with AdamW and with SGD+momentum; docs/critical-batch.md)
BENCHMARK_RATIOS = {"B_simple": (0.60, 1.91), "B_noise": (0.32, 2.27)}
#: B_simple (1/(1 + B̂/B)-weighted) / measured B_crit: (point, low, high). The point is our benchmark's (geometric
#: mean 0.95 over 11 targets); the range spans it and SCIENCE.md §1's 1.7–2.4 for a plain average over steps.
B_SIMPLE_OVER_B_CRIT = (1.0, 0.6, 2.4)
#: B_noise / measured B_crit: SCIENCE.md §1 found 0.7–1.5; our benchmark 0.32–2.27 (low on the character LM)
B_NOISE_OVER_B_CRIT = (1.0, 0.32, 2.3)

_SUFFIX = {"": 1.0, "k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6, "b": 1e9, "B": 1e9, "G": 1e9, "t": 1e12, "T": 1e12}
_NUMBER = r"([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBGtT]?)"


def parse_quantity(text: str | float | int, what: str = "quantity") -> float:
    """Parse ``"20B"``, ``"350M"``, ``"1.5e21"``, ``"1e21 FLOPs"``, ``"3.2M tokens"`` into a float.

    >>> parse_quantity("20B"), parse_quantity("350M"), parse_quantity("1e21 FLOPs")
    (20000000000.0, 350000000.0, 1e+21)
    """
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = re.fullmatch(_NUMBER + r"\s*(flops?|tokens?|tok|params?|parameters|examples?|seqs?|sequences?)?",
                             text.strip(), flags=re.IGNORECASE)
        if not match:
            raise ValueError(f"cannot read {what} {text!r}; write e.g. 20B, 350M, 1.5e21 or 14000")
        value = float(match.group(1)) * _SUFFIX[match.group(2)]
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be positive and finite, got {text!r}")
    return value


def parse_throughput(text: str | float) -> tuple[float, str]:
    """Parse a per-device throughput: ``"14000tok/s"``, ``"14k tokens/s"``, ``"120ex/s"``, ``"120 samples/s"``.

    Returns ``(value per second, "tokens" | "examples")``; a bare number is tokens per second.

    >>> parse_throughput("14000tok/s")
    (14000.0, 'tokens')
    """
    if isinstance(text, (int, float)):
        return parse_quantity(text, "throughput"), "tokens"
    match = re.fullmatch(_NUMBER + r"\s*(tok|tokens?|ex|examples?|samples?|seqs?|sequences?)?\s*(?:/\s*s(?:ec)?)?",
                         text.strip(), flags=re.IGNORECASE)
    if not match:
        raise ValueError(f"cannot read throughput {text!r}; write e.g. 14000tok/s or 120ex/s (per device)")
    value = float(match.group(1)) * _SUFFIX[match.group(2)]
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"throughput must be positive, got {text!r}")
    unit = (match.group(3) or "tok").lower()
    return value, "tokens" if unit.startswith("tok") else "examples"


@dataclass
class NoiseReading:
    """A noise-scale measurement averaged over a window, in ``unit`` (``examples`` or ``tokens``)."""

    source_file: str
    kind: str  #: "noise.jsonl" or "measure.json"
    unit: str
    tokens_per_example: float | None
    b_simple: dict[str, float]
    b_noise: dict[str, float] | None
    window: dict[str, Any]
    lr: float | None
    batch_size: float | None  #: examples per step of the measured run
    optimizer: str | None
    loss_first: float | None = None
    loss_last: float | None = None
    eps_max: dict[str, float] | None = None
    meta: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _parse_window(window: str | Sequence[int] | None, steps: Sequence[int]) -> tuple[int, int, str]:
    """Window in steps: ``None`` takes every measured step; ``"100:500"`` or ``(100, 500)``."""
    first_all, last_all = min(steps), max(steps)
    if window is None:
        return first_all, last_all, "default: every measured step, each weighted by 1/(1 + B̂/B)"
    if isinstance(window, str):
        match = re.fullmatch(r"\s*(\d*)\s*:\s*(\d*)\s*", window)
        if not match:
            raise ValueError(f"cannot read window {window!r}; write FIRST:LAST in steps, e.g. 100:500 or 100:")
        first = int(match.group(1)) if match.group(1) else first_all
        last = int(match.group(2)) if match.group(2) else last_all
    else:
        first, last = int(window[0]), int(window[1])
    if first > last:
        raise ValueError(f"window {window!r} is empty (first step after last)")
    return first, last, "chosen by the user"


def _load_jsonl(path: Path) -> list[dict]:
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{str(path)!r} line {number} is not JSON ({exc.msg}): {line[:80]!r}") from None
        if not isinstance(record, dict) or "kind" not in record:
            raise ValueError(f"{str(path)!r} line {number} has no \"kind\" field: {line[:80]!r}")
        records.append(record)
    return records


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_noise_jsonl(path: str | Path, window: str | Sequence[int] | None = None) -> NoiseReading:
    """Read a monitor log (docs/formats.md, ``noise.jsonl``) and average it over a window of steps."""
    path = Path(path)
    records = _load_jsonl(path)
    meta = next((r for r in records if r["kind"] == "meta"), {})
    steps = [r for r in records if r["kind"] == "step"]
    notes: list[str] = []
    good = []
    for r in steps:
        if not all(_finite(r.get(k)) for k in ("step", "grad_sq_norm", "trace_sigma")):
            notes.append(f"step record {r.get('step')!r} has a missing or non-finite grad_sq_norm/trace_sigma; skipped")
            continue
        good.append(r)
    skipped = [r for r in records if r["kind"] == "skip"]
    if skipped:
        notes.append(f"{len(skipped)} steps were not measured by the monitor (e.g. step {skipped[0].get('step')}: "
                     f"{skipped[0].get('reason')!r})")
    if len(good) < 2:
        raise ValueError(f"{str(path)!r} has {len(good)} usable step records; need at least 2 to average a noise scale")
    first, last, how = _parse_window(window, [r["step"] for r in good])
    inside = [r for r in good if first <= r["step"] <= last]
    if len(inside) < 2:
        raise ValueError(f"window {first}:{last} of {str(path)!r} holds {len(inside)} step records; need at least 2")
    unit = meta.get("unit", "examples")
    tpe = meta.get("tokens_per_example")
    scale = float(tpe) if unit == "tokens" and _finite(tpe) else 1.0
    if unit == "tokens" and scale == 1.0:
        notes.append("unit is tokens but tokens_per_example is missing: values left in examples")
        unit = "examples"
    from trainwise.noise.averaging import checkpoint_spans, step_blocks, weighted_mean_with_stderr

    batch = [r["batch_size"] for r in inside if _finite(r.get("batch_size"))]
    run_batch = float(np.median(batch)) if batch else None
    if run_batch is None:
        notes.append("the log has no batch_size: steps are averaged without the 1/(1 + B̂/B) weight")
    blocks = step_blocks([r["step"] for r in inside], [r["grad_sq_norm"] for r in inside],
                         [r["trace_sigma"] for r in inside])
    b_simple = weighted_mean_with_stderr(blocks, run_batch, first - 1, last)
    b_simple = {k: v * scale for k, v in b_simple.items()}
    if not math.isfinite(b_simple["value"]) or b_simple["value"] <= 0:
        raise ValueError(f"the average |G|² or tr(Σ) over steps {first}:{last} of {str(path)!r} is not positive "
                         f"(B_simple = {b_simple['value']!r}); measure more steps")
    hessian = [r for r in records if r["kind"] == "hessian" and first <= r.get("step", -1) <= last]
    b_noise = eps_max = None
    if hessian:
        spans = checkpoint_spans([(float(r["step"]), float(r["trace_h_sigma"]["value"]), float(r["ghg"]["value"]))
                                  for r in hessian], first_step=first - 1)
        weighted = weighted_mean_with_stderr(spans, run_batch, first - 1, last)
        value, stderr = weighted["value"], weighted["stderr"]
        if len(hessian) < 3 or not math.isfinite(stderr):
            single = hessian[0].get("b_noise") if len(hessian) == 1 else None
            stderr = float(single.get("stderr", math.nan)) if isinstance(single, dict) else math.nan
        h_scale = scale if hessian[0].get("unit", unit) == "examples" else 1.0
        b_noise = {"value": value * h_scale, "stderr": stderr * h_scale, "readings": len(hessian)}
        em = [r["eps_max"]["value"] for r in hessian if isinstance(r.get("eps_max"), dict)]
        if em:
            eps_max = {"value": float(np.mean(em)), "stderr": float(np.std(em, ddof=1) / math.sqrt(len(em))) if len(em) > 1 else math.nan}
    lrs = [r["lr"] for r in inside if _finite(r.get("lr"))]
    losses = [r["loss"] for r in inside if _finite(r.get("loss"))]
    reading = NoiseReading(
        source_file=str(path), kind="noise.jsonl", unit=unit, tokens_per_example=float(tpe) if _finite(tpe) else None,
        b_simple=b_simple, b_noise=b_noise,
        window={"first_step": first, "last_step": last, "steps": len(inside), "how": how},
        lr=float(np.median(lrs)) if lrs else None, batch_size=run_batch,
        optimizer=meta.get("optimizer"), loss_first=losses[0] if losses else None, loss_last=losses[-1] if losses else None,
        eps_max=eps_max, meta=meta, warnings=notes,
    )
    reading.warnings.extend(_probe_warnings(reading, lrs))
    return reading


def read_measure_json(path: str | Path) -> NoiseReading:
    """Read ``trainwise measure --json`` output (docs/formats.md, ``measure.json``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or "summary" not in data:
        raise ValueError(f"{str(path)!r} has no \"summary\": is it the output of `trainwise measure --json`?")
    meta, summary = data.get("meta", {}), data["summary"]
    b_simple = summary.get("b_simple")
    if not isinstance(b_simple, dict) or not _finite(b_simple.get("value")) or b_simple["value"] <= 0:
        raise ValueError(f"{str(path)!r}: summary.b_simple is missing or not positive: {b_simple!r}")
    b_noise = summary.get("b_noise")
    if not (isinstance(b_noise, dict) and _finite(b_noise.get("value")) and b_noise["value"] > 0):
        b_noise = None
    checkpoints = data.get("checkpoints", [])
    lrs = [c["lr"] for c in checkpoints if _finite(c.get("lr"))]
    losses = [c["loss"] for c in checkpoints if _finite(c.get("loss"))]
    window = dict(summary.get("window", {}))
    window.setdefault("how", "as chosen by trainwise measure")
    eps = summary.get("eps_max")
    reading = NoiseReading(
        source_file=str(path), kind="measure.json", unit=meta.get("unit", "examples"),
        tokens_per_example=meta.get("tokens_per_example"),
        b_simple={"value": float(b_simple["value"]), "stderr": float(b_simple.get("stderr") or math.nan)},
        b_noise={"value": float(b_noise["value"]), "stderr": float(b_noise.get("stderr") or math.nan)} if b_noise else None,
        window=window, lr=meta.get("lr") if _finite(meta.get("lr")) else (lrs[0] if lrs else None),
        batch_size=meta.get("batch_size"), optimizer=meta.get("optimizer"),
        loss_first=losses[0] if losses else None, loss_last=losses[-1] if losses else None,
        eps_max=eps if isinstance(eps, dict) and _finite(eps.get("value")) else None, meta=meta,
    )
    reading.warnings.extend(_probe_warnings(reading, lrs))
    return reading


def read_measurement(path: str | Path, window: str | Sequence[int] | None = None) -> NoiseReading:
    """Read either file format, by content (a JSON object with ``summary``, or JSON lines with ``kind``)."""
    path = Path(path)
    if path.is_dir():
        for name in ("measure.json", "noise.jsonl"):
            if (path / name).exists():
                return read_measurement(path / name, window)
        raise FileNotFoundError(f"{str(path)!r} holds neither measure.json nor noise.jsonl")
    if not path.exists():
        raise FileNotFoundError(f"no such measurement file: {str(path)!r}")
    head = path.read_text()[:4096].lstrip()
    if head.startswith("{") and "\"summary\"" in path.read_text():
        if window is not None:
            warnings.warn("--window applies to noise.jsonl only; measure.json carries its own window", stacklevel=2)
        return read_measure_json(path)
    return read_noise_jsonl(path, window)


def _probe_warnings(reading: NoiseReading, lrs: Sequence[float]) -> list[str]:
    """Signs that the measured run is a low-noise probe, whose noise scale reads 10–100× above B_crit."""
    notes = []
    if lrs and max(lrs) > 3 * min(lrs) > 0:
        notes.append(f"the learning rate changed {max(lrs) / min(lrs):.1f}× over the window (B_noise ∝ 1/T, T = lr/B): "
                     "the average mixes temperatures; read a window with a steady LR, before the decay")
    b_simple_examples = reading.b_simple["value"] / (reading.tokens_per_example or 1.0 if reading.unit == "tokens" else 1.0)
    if reading.batch_size and reading.batch_size > 4 * b_simple_examples:
        notes.append(f"the run's batch ({reading.batch_size:g} examples) is {reading.batch_size / b_simple_examples:.0f}× "
                     "its own B_simple: a large-batch, low-noise path reads the noise scale high")
    if reading.loss_first is not None and reading.loss_last is not None and reading.loss_first > 0:
        drop = (reading.loss_first - reading.loss_last) / reading.loss_first
        if abs(drop) < 0.005 and reading.window.get("steps", 0) >= 20:
            notes.append(f"the loss hardly moved over the window ({reading.loss_first:.4g} → {reading.loss_last:.4g}): "
                         "a tiny learning rate is a low-noise probe and reads the noise scale 10–100× high")
    if reading.lr is None:
        notes.append("the log has no learning rate: cannot check that the run was well tuned (the prediction assumes it)")
    return notes


def _round_batch(batch: float, multiple: float) -> float:
    return max(multiple, round(batch / multiple) * multiple)


def make_plan(
    reading: NoiseReading | None = None,
    *,
    params: float | None = None,
    tokens: float | None = None,
    compute: float | None = None,
    devices: int = 1,
    throughput: tuple[float, str] | None = None,
    seq_len: int | None = None,
    optimizer: str | None = None,
    batch_sizes: Sequence[float] | None = None,
) -> dict:
    """Recommend a batch size and learning rate and tabulate the steps/data/time trade-off (see module doc).

    Needs a ``reading`` or ``params`` with ``tokens`` or ``compute``. Batch sizes are in tokens when the reading
    is in tokens or no reading is given, else in examples (``seq_len`` converts examples to tokens).
    """
    if reading is None and params is None:
        raise ValueError("a plan needs a measurement (--from) or a model size (--params) with --tokens or --compute")
    if devices < 1:
        raise ValueError(f"devices must be >= 1, got {devices!r}")
    notes: list[str] = []
    if compute is not None and tokens is None and params is not None:
        tokens = compute / (6.0 * params)
        notes.append(f"token budget from compute: D = C/(6N) = {tokens:.3g}")
    if params is not None and tokens is not None and compute is None:
        compute = 6.0 * params * tokens
    unit = "tokens"
    tokens_per_example = float(seq_len) if seq_len else None
    if reading is not None:
        unit = reading.unit
        if reading.tokens_per_example:
            tokens_per_example = float(reading.tokens_per_example)
            if seq_len and abs(seq_len - tokens_per_example) > 0.5:
                notes.append(f"--seq-len {seq_len} differs from the log's tokens_per_example {tokens_per_example:g}; using the log's")
    to_tokens = (tokens_per_example or 1.0) if unit == "examples" else 1.0

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

    # --- critical batch ---
    # B_simple predicted the measured B_crit within 0.6–1.9× on every benchmark target, B_noise within 0.32–2.3×,
    # so B_simple is the estimate and B_noise, when measured, a second opinion beside it.
    if reading is not None:
        point, low, high = B_SIMPLE_OVER_B_CRIT
        base, name = reading.b_simple, "B_simple"
    else:
        base = name = None
    if base is not None:
        value = base["value"] / point
        rel = (base.get("stderr") or 0.0) / base["value"] if _finite(base.get("stderr")) else 0.0
        b_crit = {
            "value": value, "low": base["value"] / high * (1 - rel), "high": base["value"] / low * (1 + rel),
            "source": f"{name} averaged over steps {reading.window.get('first_step')}–{reading.window.get('last_step')} "
            f"of {reading.source_file}" + ("" if point == 1.0 else f", divided by {point:g}"),
            "why": f"calibration: {name} averaged this way read {BENCHMARK_RATIOS[name][0]:g}–"
            f"{BENCHMARK_RATIOS[name][1]:g}× the measured B_crit on trainwise's benchmark tasks (docs/critical-batch.md), "
            f"and a plain step average 1.7–2.4× (SCIENCE.md §1); the range {low:g}–{high:g}× covers both and "
            f"±1 standard error ({rel:.0%})",
        }
        if reading.b_noise is not None:
            b_noise = reading.b_noise["value"]
            b_crit["b_noise"] = {"value": b_noise, "low": b_noise / B_NOISE_OVER_B_CRIT[2],
                                 "high": b_noise / B_NOISE_OVER_B_CRIT[1],
                                 "why": "the paper's prediction B_crit ≈ B_noise; calibrated "
                                 f"{B_NOISE_OVER_B_CRIT[1]:g}–{B_NOISE_OVER_B_CRIT[2]:g}× (docs/critical-batch.md)"}
            ratio = b_noise / reading.b_simple["value"]
            if not 0.5 <= ratio <= 2.0:
                notes.append(
                    f"B_noise ({b_noise:.3g}) is {ratio:.2g}× B_simple ({reading.b_simple['value']:.3g}): the Hessian "
                    "weighting moves the estimate a lot. On our benchmarks B_simple was the steadier predictor "
                    f"({BENCHMARK_RATIOS['B_simple'][0]:g}–{BENCHMARK_RATIOS['B_simple'][1]:g}× B_crit, B_noise "
                    f"{BENCHMARK_RATIOS['B_noise'][0]:g}–{BENCHMARK_RATIOS['B_noise'][1]:g}×); a sweep on a small proxy "
                    "(trainwise sweep) settles it")
    elif "kaplan" in laws:
        estimates = {"kaplan B_crit": laws["kaplan"]["b_crit_tokens"]}
        for law in ("deepseek", "step_law"):
            if law in laws:
                estimates[f"{law} B_opt"] = laws[law]["batch_tokens"]
        value = float(np.exp(np.mean(np.log(list(estimates.values())))))
        b_crit = {"value": value, "low": min(estimates.values()) / 1.5, "high": max(estimates.values()) * 1.5,
                  "source": "geometric mean of " + ", ".join(f"{k} {_fmt(v)}" for k, v in estimates.items())
                  + f" (Kaplan at L(N, D) = {laws['kaplan']['loss']:.3f} nats/token)",
                  "why": "no measurement: scaling laws fitted on other data and tokenizers; the range spans them ×/÷ 1.5"}
    else:
        raise ValueError("without a measurement the plan needs both --params and --tokens (or --compute)")

    # --- recommendation ---
    multiple = float(devices) * (1.0 if unit == "examples" else (tokens_per_example or 1.0))
    rec_batch = _round_batch(b_crit["value"], multiple)
    rec_note = f"B_crit rounded to a multiple of {multiple:g} {unit} ({devices} device{'s' if devices > 1 else ''}"
    rec_note += f" × {tokens_per_example:g} tokens/sequence)" if unit == "tokens" and tokens_per_example else ")"
    opt_name = (optimizer or (reading.optimizer if reading else None) or "adamw").lower()
    lr_options: dict[str, float] = {}
    lr_source = None
    if reading is not None and reading.lr and reading.batch_size:
        measured_batch_unit = reading.batch_size * ((tokens_per_example or 1.0) if unit == "tokens" else 1.0)
        if opt_name.startswith("sgd"):
            lr = reading.lr * rec_batch / measured_batch_unit
            rule = "linear (SGD, Goyal et al. 2017)"
        else:
            target = min(rec_batch, reading.b_noise["value"]) if reading.b_noise else rec_batch
            lr = reading.lr * math.sqrt(target / measured_batch_unit)
            rule = "square root (Adam, Malladi et al. 2022), not beyond B_noise (Li et al. 2024)"
        lr_options["measured run, rescaled"] = lr
        lr_source = f"the measured run's lr {reading.lr:.3g} at batch {measured_batch_unit:g} {unit}, rescaled by the {rule} rule"
        if reading.eps_max and opt_name.startswith("sgd") and reading.b_noise:
            from trainwise.theory import eps_opt

            lr_options["ε_opt(B) = ε_max/(1 + B_noise/B)"] = float(eps_opt(rec_batch, reading.eps_max["value"], reading.b_noise["value"]))
    for law in ("deepseek", "step_law"):
        if "lr" in laws.get(law, {}):
            lr_options[law] = laws[law]["lr"]
    if lr_source is None and lr_options:
        lr_source = "geometric mean of " + ", ".join(lr_options)
        lr = float(np.exp(np.mean(np.log(list(lr_options.values())))))
    elif lr_source is None:
        lr = None
        lr_source = "no learning rate in the measurement and no --params/--tokens for a scaling law"

    # --- trade-off table ---
    crit = b_crit["value"]
    budget_unit = None  # E budget in the table's unit
    if tokens is not None:
        budget_unit = tokens / to_tokens
    if budget_unit is not None:
        e_min = budget_unit / (1.0 + rec_batch / crit)
        target_note = f"target: the loss the budget of {tokens:.3g} tokens reaches at the recommended batch"
    else:
        e_min = crit * 1000.0
        target_note = "no token budget: steps and data in units of S_min = 1000 steps (relative)"
    s_min = e_min / crit
    if batch_sizes is None:
        batch_sizes = sorted({_round_batch(crit * 2.0**k, multiple) for k in range(-4, 5)} | {rec_batch})
    rows = []
    per_device_rate = None
    if throughput is not None:
        rate, rate_unit = throughput
        if rate_unit == unit:
            per_device_rate = rate
        elif rate_unit == "tokens" and unit == "examples":
            per_device_rate = rate / tokens_per_example if tokens_per_example else None
        else:
            per_device_rate = rate * tokens_per_example if tokens_per_example else None
        if per_device_rate is None:
            notes.append(f"throughput is in {rate_unit} but the plan is in {unit} and no --seq-len converts them")
    for b in batch_sizes:
        steps = s_min * (1 + crit / b)
        examples = e_min * (1 + b / crit)
        row = {"batch_size": float(b), "steps": steps, "examples": examples, "tokens": examples * to_tokens if
               (unit == "tokens" or tokens_per_example) else None,
               "steps_over_min": 1 + crit / b, "data_over_min": 1 + b / crit,
               "knee": abs(math.log(b / crit)) < math.log(2) / 2, "recommended": b == rec_batch}
        if per_device_rate:
            seconds = examples / (per_device_rate * devices)
            row["wall_clock_h"] = seconds / 3600.0
            row["device_hours"] = seconds / 3600.0 * devices
        if params is not None and row["tokens"] is not None:
            row["flops"] = 6.0 * params * row["tokens"]
        if b % devices and unit == "examples":
            row["note"] = f"not divisible by {devices} devices"
        rows.append(row)

    rec_tokens = rec_batch * to_tokens if (unit == "tokens" or tokens_per_example) else None
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
        "unit": unit,
        "tokens_per_example": tokens_per_example,
        "measurement": reading.to_dict() if reading else None,
        "inputs": {"params": params, "tokens": tokens, "compute": compute, "devices": devices,
                   "throughput": list(throughput) if throughput else None, "seq_len": seq_len, "optimizer": opt_name},
        "b_crit": b_crit,
        "recommendation": {"batch_size": rec_batch, "batch_tokens": rec_tokens, "why": rec_note,
                           "per_device": rec_batch / devices, "lr": lr, "lr_source": lr_source, "lr_options": lr_options},
        "tradeoff": {"s_min": s_min, "e_min": e_min, "target": target_note},
        "table": rows,
        "laws": laws,
        "published_runs": published,
        "notes": notes,
    }


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, (int, float)):
        for scale, suffix in ((1e15, "P"), (1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= scale:
                return f"{value / scale:.{digits}g}{suffix}"
        return f"{value:.{digits}g}"
    return str(value)


def format_plan(plan: dict) -> str:
    """The plan as readable text: measurement, B_crit, recommendation, trade-off table, laws, published runs."""
    unit = plan["unit"]
    lines = []
    m = plan["measurement"]
    if m:
        w = m["window"]
        lines.append(f"Measured noise scale ({m['kind']}, steps {w.get('first_step')}–{w.get('last_step')}, "
                     f"{w.get('steps', w.get('checkpoints', '?'))} readings; {w.get('how', '')}):")
        lines.append(f"  B_simple = {_fmt(m['b_simple']['value'])} ± {_fmt(m['b_simple']['stderr'], 2)} {unit}")
        if m["b_noise"]:
            lines.append(f"  B_noise  = {_fmt(m['b_noise']['value'])} ± {_fmt(m['b_noise']['stderr'], 2)} {unit}")
    bc = plan["b_crit"]
    lines.append(f"Critical batch B_crit ≈ {_fmt(bc['value'])} {unit}  (likely {_fmt(bc['low'])}–{_fmt(bc['high'])})")
    lines.append(f"  from {bc['source']}")
    lines.append(f"  {bc['why']}")
    if bc.get("b_noise"):
        bn = bc["b_noise"]
        lines.append(f"  B_noise says {_fmt(bn['value'])} {unit} (likely {_fmt(bn['low'])}–{_fmt(bn['high'])}; {bn['why']})")
    rec = plan["recommendation"]
    lines.append("")
    extra = f" = {_fmt(rec['batch_tokens'])} tokens" if unit == "examples" and rec["batch_tokens"] else ""
    lines.append(f"Recommended global batch: {_fmt(rec['batch_size'])} {unit}{extra}  ({rec['why']}; "
                 f"{_fmt(rec['per_device'])} per device)")
    lines.append(f"Recommended learning rate: {_fmt(rec['lr'])}  ({rec['lr_source']})")
    for name, value in rec["lr_options"].items():
        lines.append(f"    {name:<38s} {_fmt(value)}")
    lines.append("")
    lines.append(plan["tradeoff"]["target"])
    has_time = any("wall_clock_h" in r for r in plan["table"])
    has_flops = any("flops" in r for r in plan["table"])
    header = f"{'batch (' + unit + ')':>16s} {'steps':>9s} {'S/S_min':>8s} {'tokens' if plan['table'][0]['tokens'] is not None else unit:>9s} {'E/E_min':>8s}"
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


def _hours(hours: float | None) -> str:
    if hours is None:
        return "-"
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} d"
