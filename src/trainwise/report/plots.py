"""Plots of plan, sweep and branched results (matplotlib imported lazily, Agg backend).

Every function takes the JSON-ready dictionary the corresponding step writes, so the report can redraw
plots from files alone, and returns the path of the PNG it wrote.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from trainwise.report._mpl import pyplot

__all__ = ["plot_sweep_steps", "plot_sweep_tradeoff", "plot_plan_tradeoff", "plot_branched"]


def _finish(fig, path: str | Path) -> str:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return str(path)


def plot_sweep_steps(sweep: dict, path: str | Path) -> str:
    """Steps-to-target vs batch size per target (log-log): Shallue et al.'s three regimes, with the fit
    ``S = S_min(1 + B_crit/B)`` and ``B_crit`` marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    all_b = []
    for i, (tkey, row) in enumerate(sweep["steps_table"].items()):
        color = colors[i % len(colors)]
        pts = [(float(b), s) for b, s in row.items() if s is not None]
        if not pts:
            continue
        b, s = np.array(pts).T
        all_b.extend(b)
        ax.loglog(b, s, "o", color=color, label=f"target {tkey}")
        fit = sweep["fits"].get(tkey)
        if fit and fit["s_min"] > 0 and fit["e_min"] > 0:
            grid = np.geomspace(b.min() / 1.5, b.max() * 1.5, 200)
            ax.loglog(grid, fit["s_min"] + fit["e_min"] / grid, "-", color=color, alpha=0.7)
            ax.axvline(fit["b_crit"], color=color, ls=":", alpha=0.8)
            ax.axhline(fit["s_min"], color=color, ls="--", alpha=0.3)
            ax.annotate(f"S_min = {_short(fit['s_min'])}", (1, fit["s_min"]), xycoords=("axes fraction", "data"),
                        xytext=(-4, 3), textcoords="offset points", ha="right", fontsize=7, color=color)
            ax.annotate(f"B_crit = {_short(fit['b_crit'])}", (fit["b_crit"], 1), xycoords=("data", "axes fraction"),
                        xytext=(3, -4), textcoords="offset points", va="top", fontsize=7, color=color, rotation=90)
    if all_b:
        ax.text(0.02, 0.03, "perfect scaling (slope −1)  →  diminishing returns  →  no gain (S ≈ S_min)",
                transform=ax.transAxes, fontsize=7, alpha=0.8)
    ax.set_xlabel("batch size B (examples)")
    ax.set_ylabel("steps to target")
    ax.set_title("Steps to target vs batch size (dotted: B_crit, dashed: S_min)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.2)
    return _finish(fig, path)


def plot_sweep_tradeoff(sweep: dict, path: str | Path) -> str:
    """Steps vs examples per target with the hyperbola ``(S/S_min − 1)(E/E_min − 1) = 1`` and the point
    ``(2E_min, 2S_min)`` of ``B_crit`` (McCandlish et al. Fig. 5)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (tkey, row) in enumerate(sweep["steps_table"].items()):
        color = colors[i % len(colors)]
        pts = [(float(b) * s, s) for b, s in row.items() if s is not None]
        if not pts:
            continue
        e, s = np.array(pts).T
        ax.loglog(e, s, "o", color=color, label=f"target {tkey}")
        fit = sweep["fits"].get(tkey)
        if fit and fit["s_min"] > 0 and fit["e_min"] > 0:
            grid = np.geomspace(fit["e_min"] * 1.001, max(e.max(), fit["e_min"] * 4) * 1.5, 300)
            ax.loglog(grid, fit["s_min"] * grid / (grid - fit["e_min"]), "-", color=color, alpha=0.7)
            ax.axhline(fit["s_min"], color=color, ls="--", lw=0.7, alpha=0.4)
            ax.axvline(fit["e_min"], color=color, ls="--", lw=0.7, alpha=0.4)
            ax.annotate(f"E_min = {_short(fit['e_min'])}", (fit["e_min"], 1), xycoords=("data", "axes fraction"),
                        xytext=(3, -4), textcoords="offset points", va="top", fontsize=7, color=color, rotation=90)
            ax.loglog([2 * fit["e_min"]], [2 * fit["s_min"]], "*", ms=14, color=color, mec="k",
                      label=f"B_crit = {fit['b_crit']:.3g} ± {fit['b_crit_stderr']:.2g}")
    data_steps = [s for row in sweep["steps_table"].values() for s in row.values() if s is not None]
    if data_steps:
        ax.set_ylim(min(data_steps) / 2, max(data_steps) * 3)
    ax.set_xlabel("examples processed E")
    ax.set_ylabel("optimizer steps S")
    ax.set_title("Steps vs examples to each target (dashed: S_min, E_min)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.2)
    return _finish(fig, path)


def plot_plan_tradeoff(plan: dict, path: str | Path) -> str:
    """Steps vs tokens (or examples) to the target for the plan's batch-size options, ``B_crit`` and the
    recommendation marked, the asymptotes ``S_min`` and ``E_min`` labelled."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    rows = plan["table"]
    unit = plan.get("unit", "tokens")
    data_key = "tokens" if unit == "tokens" else "examples"  # the unit of E_min, so points and markers agree
    e = np.array([r[data_key] for r in rows], dtype=float)
    s = np.array([r["steps"] for r in rows], dtype=float)
    crit = plan["b_crit"]["value"]
    tr = plan["tradeoff"]
    grid = np.geomspace(tr["e_min"] * 1.02, max(e.max(), 4 * tr["e_min"]) * 1.3, 200)
    ax.loglog(grid, tr["s_min"] * grid / (grid - tr["e_min"]), "-", color="0.6", lw=1, zorder=1,
              label="(S/S_min − 1)(E/E_min − 1) = 1")
    ax.loglog(e, s, "o", color="C0", ms=5, zorder=2, label="batch-size options")
    for r, ei, si in zip(rows, e, s):
        ax.annotate(_short(r["batch_size"]), (ei, si), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.loglog([2 * tr["e_min"]], [2 * tr["s_min"]], "*", ms=11, color="C3", mec="k", zorder=3,
              label=f"B_crit ≈ {_short(crit)} {unit}")
    rec = plan["recommendation"]["batch_size"]
    # a ring drawn over the star: both stay visible when the recommendation is B_crit itself
    ax.loglog([tr["e_min"] * (1 + rec / crit)], [tr["s_min"] * (1 + crit / rec)], "o", ms=17, mfc="none", mec="C2",
              mew=2, zorder=4, label=f"recommended {_short(rec)} {unit}")
    ax.axhline(tr["s_min"], ls="--", color="0.5", lw=0.8)
    ax.axvline(tr["e_min"], ls="--", color="0.5", lw=0.8)
    # the curve hugs the top-left and bottom-right corners, so the labels go to the other two
    ax.annotate(f"S_min = {_short(tr['s_min'])} steps", (0, tr["s_min"]), xycoords=("axes fraction", "data"),
                xytext=(4, 3), textcoords="offset points", ha="left", fontsize=7, color="0.3")
    ax.annotate(f"E_min = {_short(tr['e_min'])} {unit}", (tr["e_min"], 0), xycoords=("data", "axes fraction"),
                xytext=(3, 4), textcoords="offset points", va="bottom", fontsize=7, color="0.3", rotation=90)
    _plain_log_ticks(ax)
    ax.set_xlabel(f"{unit} to the target")
    ax.set_ylabel("optimizer steps")
    ax.set_title("Steps vs data to the same loss")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(True, which="major", alpha=0.25)
    return _finish(fig, path)


def _plain_log_ticks(ax) -> None:
    """Label only the decades, as 10k / 1M rather than 10⁴, so minor labels cannot collide ("3×10⁷4×10⁷")."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        decades = math.log10(hi / lo) if lo > 0 and hi > lo else 3.0
        subs = (1.0,) if decades > 3 else (1.0, 2.0, 5.0) if decades > 1.2 else (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
        axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
        axis.set_major_formatter(FuncFormatter(lambda v, _pos: _short(v)))
        axis.set_minor_formatter(NullFormatter())


def plot_branched(branched: dict, path: str | Path) -> str:
    """Largest batch that keeps up (Merrill et al. 2025) vs examples seen by the base run."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    pts = [(float(c["examples"]), c["b_crit"], c["capped"]) for c in branched["checkpoints"]]
    x, y, capped = zip(*pts)
    ax.plot(x, y, "o-", label="critical batch (branched)")
    ax.set_yscale("log")
    positive = [v for v in x if v > 0]
    # symlog: the first checkpoint (0 examples) sits at 0, not at 10⁰; log spacing beyond the first positive one
    ax.set_xscale("symlog", linthresh=min(positive) if positive else 1.0, linscale=0.5)
    ax.set_xlim(left=0)
    ax.margins(x=0.06)
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _short(v)))
    ax.yaxis.set_minor_formatter(NullFormatter())
    for xi, yi, ci in pts:
        if ci:
            ax.annotate("≥", (xi, yi), xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("examples seen by the base run")
    ax.set_ylabel("largest batch keeping up")
    ax.set_title("Branched critical batch over training")
    ax.grid(True, which="major", alpha=0.2)
    ax.legend(fontsize=8)
    return _finish(fig, path)


def _short(value: float) -> str:
    if value is None or not math.isfinite(value):
        return "?"
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"
