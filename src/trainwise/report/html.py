"""One self-contained HTML page gathering ``measure``, ``plan``, ``sweep`` and ``branched`` results.

Plots are embedded as base64 PNG, styles inline: the file can be mailed or attached as it is. Inputs are the
JSON files those commands write (``measure.json``, ``plan.json``, ``sweep.json``, ``branched.json``) or the
directories holding them; missing plots are redrawn from the JSON when matplotlib is available.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
from pathlib import Path
from typing import Any, Iterable

from trainwise._format import short
from trainwise.report.chart import tradeoff_chart
from trainwise.report.schema import SHAPES, check

__all__ = ["collect_results", "build_report", "write_report"]

_KNOWN = ("measure.json", "plan.json", "sweep.json", "branched.json")

_CSS = """
*{box-sizing:border-box} body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:1.5em auto;
padding:0 1em;color:#222;line-height:1.4;overflow-wrap:anywhere}
h1{border-bottom:2px solid #444;font-size:1.7em} h2{margin-top:2em;border-bottom:1px solid #ccc}
.scroll{overflow-x:auto;max-width:100%;margin:.6em 0;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;font-size:.92em} td,th{border:1px solid #ddd;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#f3f3f3} td.l,th.l{text-align:left;white-space:normal;min-width:8em} tr.rec{background:#e7f6e7;font-weight:600}
.note{color:#8a5300;margin:.2em 0} .src{color:#666;font-size:.88em} img{max-width:100%;height:auto;margin:.5em 0}
.kpi{display:inline-block;margin:.4em 1.5em .4em 0;vertical-align:top} .kpi b{font-size:1.4em;display:block}
ul.explain{font-size:.9em;color:#333;padding-left:1.2em} details summary{cursor:pointer;color:#555}
.summary{background:#f4f8fc;border:1px solid #c9d9ea;border-radius:6px;padding:.6em 1em;margin:1em 0}
.summary h2{margin-top:.2em;border:none}
.tw-chart{max-width:760px;margin:.8em 0;position:relative} .tw-chart svg text{fill:#333}
.tw-tip{font-size:.88em;background:#fafafa;border:1px solid #ddd;border-radius:4px;padding:.3em .6em;min-height:3.2em}
"""


def _kind(path: Path, data: dict) -> str | None:
    if isinstance(data, dict) and data.get("kind") in ("plan", "sweep", "branched"):
        return data["kind"]
    if isinstance(data, dict) and "summary" in data and "checkpoints" in data:
        return "measure"
    stem = path.name.split(".")[0]
    return stem if stem in ("measure", "plan", "sweep", "branched") else None


def collect_results(paths: Iterable[str | Path]) -> list[dict]:
    """Load every known result file among ``paths`` (files, or directories searched one level deep)."""
    found: list[dict] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"report input {str(path)!r} does not exist")
        files = [path] if path.is_file() else [p for name in _KNOWN for p in [path / name] if p.exists()] + \
            [p for sub in sorted(path.iterdir()) if sub.is_dir() for name in _KNOWN for p in [sub / name] if p.exists()]
        if path.is_dir() and not files:
            raise ValueError(f"{str(path)!r} holds none of {', '.join(_KNOWN)}")
        for file in files:
            try:
                # NaN/Infinity read as null, as strict JSON writes them: a field that needs a number then says so
                data = json.loads(file.read_text(encoding="utf-8"), parse_constant=lambda constant: None)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{str(file)!r} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
            except UnicodeDecodeError as exc:
                raise ValueError(f"{str(file)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
            except RecursionError:
                raise ValueError(f"{str(file)!r}: JSON nested too deeply") from None
            kind = _kind(file, data)
            if kind is None:
                raise ValueError(f"{str(file)!r} is not a measure, plan, sweep or branched result")
            check(data, SHAPES[kind], str(file))  # a damaged file: one line naming the field, not a KeyError later
            found.append({"kind": kind, "path": file, "data": data})
    order = {"measure": 0, "plan": 1, "sweep": 2, "branched": 3}
    unique = {r["path"].resolve(): r for r in reversed(found)}  # a file reached twice (a folder and its parent) once
    return sorted(unique.values(), key=lambda r: (order[r["kind"]], found.index(r)))


def _img(path: str | Path | None, alt: str) -> str:
    if not path or not Path(path).exists():
        return ""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, (int, float)):
        return short(value, digits)
    return html.escape(str(value))


def _table(headers: list[str], rows: list[list[Any]], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        cells = "".join(f'<td class="l">{html.escape(c)}</td>' if isinstance(c, str) else f"<td>{_num(c)}</td>" for c in row)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<div class='scroll'><table><tr>{head}</tr>{''.join(body)}</table></div>"


def _plot(result: dict, key: str, fallback) -> str:
    """A plot named in the result's ``files`` (relative to its JSON), else redrawn into a temporary file."""
    files = result["data"].get("files") or {}
    candidate = files.get(key)
    if candidate:
        for base in (Path(candidate), result["path"].parent / Path(candidate).name):
            if base.exists():
                return _img(base, key)
    try:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            try:
                return _img(fallback(result["data"], Path(tmp) / "plot.png"), key)
            except (ValueError, OverflowError) as exc:  # values no axis can hold (1e308, a zero span): name the file
                raise ValueError(f"{result['path']}: cannot redraw the {key} from its values ({exc})") from None
    except ImportError:
        return '<p class="note">(plot skipped: matplotlib is not installed)</p>'


#: one plain line per number the report shows (``{unit}`` is filled in)
EXPLAIN = {
    "b_simple": "B_simple ({unit}): the batch size at which the gradient's noise is as large as its signal, "
    "tr(Σ)/|G|², read at a few checkpoints on fresh batches and averaged over the window.",
    "b_noise": "B_noise ({unit}): the same, weighted by the curvature, tr(HΣ)/GᵀHG: the paper's predictor of the "
    "critical batch. It needs Hessian-vector products and is noisier.",
    "b_simple_monitor": "B_simple from the monitor ({unit}): B_simple from every training step's own gradients "
    "(free while training). It averages every step, the checkpoint value only a few points, so the two differ by "
    "the stretch of training they sample and by noise; both are shown with one standard error.",
    "b_simple_precond": "B_simple (Adam) ({unit}): B_simple of the update Adam actually takes, g divided by √v̂.",
    "b_noise_precond": "B_noise (Adam) ({unit}): B_noise of the update Adam actually takes.",
    "eps_max": "ε_max: the best plain-SGD step size if the batch were infinite, |G|²/GᵀHG (not an Adam learning rate).",
    "b_crit": "B_crit ({unit}): the critical batch. Below it, doubling the batch nearly halves the steps; above it, "
    "steps hardly fall and compute grows. At B_crit a run takes twice the fewest steps and twice the fewest data.",
    "batch": "Recommended batch ({unit}): B_crit, rounded to whole sequences on every device.",
    "lr": "Learning rate: the rate to train at with the recommended batch, and how it was derived.",
    "table": "The table: for each batch size, the steps, data and time to reach the same loss as the recommended "
    "run on your budget (S/S_min and E/E_min: how far each is above its minimum).",
}


def _explain(names: list[str], unit: str) -> str:
    items = "".join(f"<li>{html.escape(EXPLAIN[n].format(unit=unit))}</li>" for n in names if n in EXPLAIN)
    return f'<details open><summary>What these numbers mean</summary><ul class="explain">{items}</ul></details>'


_LABELS = {"b_simple": "B_simple", "b_noise": "B_noise", "b_simple_monitor": "B_simple (monitor)",
           "b_simple_precond": "B_simple (Adam)", "b_noise_precond": "B_noise (Adam)", "eps_max": "ε_max"}


def _resolved(est: Any) -> bool:
    return isinstance(est, dict) and isinstance(est.get("value"), (int, float)) and math.isfinite(est["value"]) \
        and est["value"] > 0


def _section_measure(result: dict) -> str:
    data = result["data"]
    meta, summary = data.get("meta", {}), data.get("summary", {})
    unit = meta.get("unit", "examples")
    kpis, shown = [], []
    for name in ("b_simple", "b_noise", "b_simple_precond", "b_noise_precond", "b_simple_monitor", "eps_max"):
        est = summary.get(name)
        if est is None:
            continue
        shown.append(name)
        suffix = "" if name == "eps_max" else f" {unit}"
        value = f"{_num(est['value'])}{suffix}" if _resolved(est) else "not resolved"
        kpis.append(f'<span class="kpi">{_LABELS[name]}<b>{value}</b>± {_num(est.get("stderr"), 2)}</span>')
    window = summary.get("window", {})

    def cell(entry: Any) -> Any:
        return entry["value"] if _resolved(entry) else "not resolved" if isinstance(entry, dict) else None

    rows = [[c.get("step"), c.get("examples"), c.get("loss"), c.get("lr"), cell(c.get("b_simple")), cell(c.get("b_noise"))]
            for c in data.get("checkpoints", [])]
    out = [f"<h2>{html.escape(result.get('title') or 'Measurement')}</h2><p class='src'>{html.escape(str(result['path']))} — task {_num(meta.get('task'))}, "
           f"batch {_num(meta.get('batch_size'))} examples, lr {_num(meta.get('lr'))}, optimizer {_num(meta.get('optimizer'))}, "
           f"unit {unit}; window steps {_num(window.get('first_step'))}–{_num(window.get('last_step'))}</p>", "".join(kpis),
           _explain(shown, unit)]
    if rows:
        out.append(_table(["step", "examples", "loss", "lr", f"B_simple ({unit})", f"B_noise ({unit})"], rows))
    plot = (data.get("files") or {}).get("plot")
    if plot:
        path = Path(plot) if Path(plot).exists() else result["path"].parent / Path(plot).name
        out.append(_img(path, "noise scale during the measured run"))
    return "\n".join(out)


def _plan_table(plan: dict) -> str:
    """Batch size against steps, data, time and compute; columns with no value (FLOPs without ``--params``)
    are left out, and device-hours too when they equal wall-clock hours (one device)."""
    unit, table = plan["unit"], plan["table"]
    data_key = "tokens" if table[0]["tokens"] is not None else "examples"
    columns = [(f"batch ({unit})", lambda r: r["batch_size"]), ("steps", lambda r: r["steps"]),
               ("S/S_min", lambda r: r["steps_over_min"]),
               ("tokens" if data_key == "tokens" else "examples", lambda r: r[data_key]),
               ("E/E_min", lambda r: r["data_over_min"]), ("wall-clock (h)", lambda r: r.get("wall_clock_h")),
               ("device-hours", lambda r: r.get("device_hours")), ("FLOPs", lambda r: r.get("flops"))]
    devices = (plan.get("inputs") or {}).get("devices") or 1
    keep = [(name, get) for name, get in columns
            if any(get(r) is not None for r in table) and not (name == "device-hours" and devices == 1)]
    rows = [[get(r) for _, get in keep] + ["recommended" if r["recommended"] else ("knee" if r["knee"] else "")]
            for r in table]
    classes = ["rec" if r["recommended"] else "" for r in table]
    return _table([name for name, _ in keep] + [""], rows, classes)


def _section_plan(result: dict) -> str:
    from trainwise.report.plots import plot_plan_tradeoff

    plan = result["data"]
    unit = plan["unit"]
    rec, bc = plan["recommendation"], plan["b_crit"]
    first = next((r for r in plan["table"] if r["recommended"]), None)
    time_kpi = ""
    if first and first.get("wall_clock_h") is not None:
        time_kpi = f'<span class="kpi">time to budget<b>{_num(first["wall_clock_h"])} h</b>{_num(first["steps"])} steps</span>'
    validation = rec.get("lr_validation")
    out = [f"<h2 id='plan-{result.get('index', 0)}'>{html.escape(result.get('title') or 'Plan')}</h2>",
           f'<span class="kpi">recommended batch<b>{_num(rec["batch_size"])} {unit}</b>'
           f'B_crit likely {_num(bc["low"])}–{_num(bc["high"])}</span>',
           f'<span class="kpi">learning rate<b>{_num(rec["lr"])}</b>'
           + (html.escape(validation.split(" (")[0]) if validation else "not validated for this case") + "</span>",
           time_kpi,
           f"<p class='src'>B_crit ≈ {_num(bc['value'])} {unit} from {html.escape(bc['source'])}. {html.escape(bc['why'])}.<br>"
           f"Batch: {html.escape(rec['why'])}. Learning rate: {html.escape(str(rec['lr_source']))}"
           + (f". Validated: {html.escape(validation)}" if validation else "") + ".</p>",
           _explain(["b_crit", "batch", "lr", "table"], unit),
           f"<p>{html.escape(plan['tradeoff']['target'])}</p>"]
    m = plan.get("measurement")
    if m and m.get("predictors"):
        out.append("<p class='src'>Readings (" + unit + "): " + ", ".join(
            f"{_LABELS.get(k, k)} {_num(v['value'])} ± {_num(v.get('stderr'), 2)}" for k, v in m["predictors"].items()) + "</p>")
    out.append(_plan_table(plan))
    out.append(tradeoff_chart(plan, f"tradeoff-{result.get('index', 0)}"))
    if rec.get("lr_options"):
        out.append(_table(["learning-rate option", "value"], [[k, v] for k, v in rec["lr_options"].items()]
                          + ([["stability limit (from ε_max)", rec["lr_limits"]["stability"]]]
                             if (rec.get("lr_limits") or {}).get("stability") else [])))
    out.append(_plot(result, "plot", plot_plan_tradeoff))
    if plan.get("laws"):
        out.append(_table(["law", "batch (tokens)", "B_crit (tokens)", "lr", "source"],
                          [[k, v.get("batch_tokens"), v.get("b_crit_tokens"), v.get("lr"), v["citation"]] for k, v in plan["laws"].items()]))
    out.append("<h3>Published runs, for scale</h3>")
    out.append(_table(["run", "params", "tokens", "batch (tokens)", "sequences × length", "peak lr", "× yours", "source"],
                      [[r["name"], r["params"], r["tokens"], r["batch_tokens"], f"{r['batch_sequences']:.0f} × {r['seq_len']}",
                        r["lr"], r.get("ratio_to_recommended"), r["source"] + (f" ({r['note']})" if r.get("note") else "")]
                       for r in plan["published_runs"]]))
    out.extend(f'<p class="note">⚠ {html.escape(n)}</p>' for n in plan.get("notes", []))
    return "\n".join(out)


def _section_sweep(result: dict) -> str:
    from trainwise.report.plots import plot_sweep_steps, plot_sweep_tradeoff

    data = result["data"]
    cfg, noise = data["config"], data["noise"]
    out = [f"<h2>{html.escape(result.get('title') or 'Sweep')}: measured critical batch ({html.escape(str(cfg['task']))})</h2>",
           f"<p class='src'>batch sizes {cfg['batch_sizes']}, targets {cfg['targets']}, LR "
           + (f"grid {cfg['lrs']}" if cfg.get("lrs") else f"rule {cfg['lr_rule']} × {cfg['lr_factors']}")
           + f", step cap {cfg['max_steps']}</p>"]
    from trainwise.results import PREDICTOR_LABELS, PREDICTORS, prediction_table

    table = prediction_table(data)
    names = [n for n in PREDICTORS if any(n in r for r in table)]
    labels = PREDICTOR_LABELS
    by_target = {r["target"]: r for r in table}
    rows = []
    for t, fit in data["fits"].items():
        row = by_target.get(t, {})
        rows.append([t, fit["s_min"], fit["e_min"], fit["b_crit"], fit["b_crit_stderr"], fit["n_points"]]
                    + [x for n in names for x in (row.get(n), row.get(n + "_ratio"))])
    out.append(_table(["target", "S_min", "E_min", "B_crit", "± stderr", "batch sizes"]
                      + [x for n in names for x in (f"{labels[n]} (pred.)", "/ B_crit")], rows))
    out.append(f"<p class='src'>Predictions: {html.escape(noise['how'])}</p>")
    per_batch = noise.get("per_batch_size", {})
    if per_batch:
        targets = list(data["fits"]) or [str(t) for t in cfg["targets"]]
        out.append("<h3>Tuned run per batch size</h3>")
        out.append(_table(["batch", "best lr"] + [f"{labels[n]} to {t}" for t in targets for n in names],
                          [[int(b), e["lr"]] + [e.get("targets", {}).get(t, {}).get(n) for t in targets for n in names]
                           for b, e in per_batch.items()]))
    out.append(_plot(result, "steps_plot", plot_sweep_steps))
    out.append(_plot(result, "tradeoff_plot", plot_sweep_tradeoff))
    out.extend(f'<p class="note">⚠ {html.escape(n)}</p>' for n in data.get("notes", []))
    return "\n".join(out)


def _section_branched(result: dict) -> str:
    from trainwise.report.plots import plot_branched

    data = result["data"]
    rows = [[c["step"], c["examples"], c["loss"], c["b_crit"], "≥ (largest tried)" if c["capped"] else ""] for c in data["checkpoints"]]
    return "\n".join([f"<h2>{html.escape(result.get('title') or 'Branched critical batch')}</h2><p class='src'>{html.escape(data['method'])}</p>",
                      _table(["step", "examples", "loss", "largest batch keeping up", ""], rows),
                      _plot(result, "plot", plot_branched)])


def _titles(results: list[dict]) -> None:
    """Give each section a distinct title and anchor index (two plans in one report are told apart by folder)."""
    names = {"measure": "Measurement", "plan": "Plan", "sweep": "Sweep", "branched": "Branched critical batch"}
    counts: dict[str, int] = {}
    for r in results:
        counts[r["kind"]] = counts.get(r["kind"], 0) + 1
    seen: set[str] = set()
    for index, r in enumerate(results):
        title = names[r["kind"]]
        if counts[r["kind"]] > 1:
            folder = Path(str(r["path"])).parent
            title = f"{title}: {folder.name or folder}"
            if title in seen:
                title = f"{names[r['kind']]}: {folder}"
        seen.add(title)
        r["index"], r["title"] = index, title


def _summary(results: list[dict]) -> str:
    """The answer first: each plan's batch, learning rate, steps and time with the measured uncertainty; without a
    plan, the measured noise scale and the swept critical batch."""
    items = []
    for r in results:
        data = r["data"]
        if r["kind"] == "plan":
            unit, rec, bc = data["unit"], data["recommendation"], data["b_crit"]
            row = next((t for t in data["table"] if t["recommended"]), {})
            readings = ((data.get("measurement") or {}).get("predictors") or {})
            spread = "; ".join(f"{_LABELS.get(k, k)} {_num(v['value'])} ± {_num(v.get('stderr'), 2)}" for k, v in readings.items())
            time = f", about <b>{_num(row['wall_clock_h'])} h</b>" if row.get("wall_clock_h") is not None else ""
            items.append(
                f"<li><a href='#plan-{r['index']}'>{html.escape(r['title'])}</a>: train at a batch of "
                f"<b>{_num(rec['batch_size'])} {html.escape(unit)}</b> with learning rate <b>{_num(rec['lr'])}</b>: "
                f"<b>{_num(row.get('steps'))} steps</b>{time}. B_crit ≈ {_num(bc['value'])} (likely {_num(bc['low'])}–"
                f"{_num(bc['high'])} {html.escape(unit)})" + (f"; measured {spread}" if spread else "") + ".</li>")
        elif r["kind"] == "sweep":
            fits = ", ".join(f"{html.escape(str(t))}: {_num(f['b_crit'])} ± {_num(f['b_crit_stderr'], 2)}"
                             for t, f in data.get("fits", {}).items())
            if fits:
                items.append(f"<li>{html.escape(r['title'])}: measured critical batch per target loss {fits} (examples).</li>")
        elif r["kind"] == "measure" and not any(x["kind"] == "plan" for x in results):
            est = (data.get("summary") or {}).get("b_simple")
            if _resolved(est):
                unit = (data.get("meta") or {}).get("unit", "examples")
                items.append(f"<li>{html.escape(r['title'])}: B_simple = <b>{_num(est['value'])} ± {_num(est.get('stderr'), 2)} "
                             f"{html.escape(unit)}</b>, the plan's estimate of the critical batch (run <code>trainwise plan --from</code> "
                             "on this folder for a batch size and learning rate).</li>")
    if not items:
        return ""
    return f"<section class='summary'><h2>Recommendation</h2><ul>{''.join(items)}</ul></section>"


def build_report(results: list[dict], title: str = "trainwise report") -> str:
    """The HTML text for ``results`` from :func:`collect_results`: the recommendation first, then each section."""
    _titles(results)
    sections = {"measure": _section_measure, "plan": _section_plan, "sweep": _section_sweep, "branched": _section_branched}
    body = [_summary(results)] + [sections[r["kind"]](r) for r in results]
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sources = ", ".join(html.escape(str(r["path"])) for r in results)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='src'>generated {stamp} from {sources}</p>{''.join(body)}</body></html>")


def write_report(paths: Iterable[str | Path], out: str | Path, title: str = "trainwise report") -> Path:
    """Collect results from ``paths`` and write the self-contained page to ``out``."""
    results = collect_results(paths)
    if not results:
        raise ValueError("no results to report")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_report(results, title), encoding="utf-8")
    return out
