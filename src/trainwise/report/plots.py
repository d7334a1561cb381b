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
    if all_b:
        ax.text(0.02, 0.03, "perfect scaling (slope −1)  →  diminishing returns  →  no gain (S ≈ S_min)",
                transform=ax.transAxes, fontsize=7, alpha=0.8)
    ax.set_xlabel("batch size B (examples)")
    ax.set_ylabel("steps to target")
    ax.set_title("Steps to target vs batch size (dotted: B_crit)")
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
            ax.loglog([2 * fit["e_min"]], [2 * fit["s_min"]], "*", ms=14, color=color, mec="k",
                      label=f"B_crit = {fit['b_crit']:.3g} ± {fit['b_crit_stderr']:.2g}")
    data_steps = [s for row in sweep["steps_table"].values() for s in row.values() if s is not None]
    if data_steps:
        ax.set_ylim(min(data_steps) / 2, max(data_steps) * 3)
    ax.set_xlabel("examples processed E")
    ax.set_ylabel("optimizer steps S")
    ax.set_title("Steps vs examples to reach each target")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.2)
    return _finish(fig, path)


def plot_plan_tradeoff(plan: dict, path: str | Path) -> str:
    """Steps vs tokens (or examples) to the target for the plan's batch-size options, ``B_crit`` and the
    recommendation marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    rows = plan["table"]
    unit = plan.get("unit", "tokens")
    e = np.array([r["examples"] for r in rows], dtype=float)
    s = np.array([r["steps"] for r in rows], dtype=float)
    ax.loglog(e, s, "-", color="0.5", alpha=0.6)
    ax.loglog(e, s, "o", color="C0", label="batch-size options")
    for r in rows:
        ax.annotate(_short(r["batch_size"]), (r["examples"], r["steps"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    crit = plan["b_crit"]["value"]
    tr = plan["tradeoff"]
    ax.loglog([2 * tr["e_min"]], [2 * tr["s_min"]], "*", ms=15, color="C3", mec="k", label=f"B_crit ≈ {_short(crit)} {unit}")
    rec = plan["recommendation"]["batch_size"]
    ax.loglog([tr["e_min"] * (1 + rec / crit)], [tr["s_min"] * (1 + crit / rec)], "s", ms=9, mfc="none", mec="C2",
              mew=2, label=f"recommended {_short(rec)} {unit}")
    ax.axhline(tr["s_min"], ls="--", color="0.6", lw=0.8)
    ax.axvline(tr["e_min"], ls="--", color="0.6", lw=0.8)
    ax.set_xlabel(f"{unit} to the target")
    ax.set_ylabel("optimizer steps")
    ax.set_title("Steps vs data: (S/S_min − 1)(E/E_min − 1) = 1")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.2)
    return _finish(fig, path)


def plot_branched(branched: dict, path: str | Path) -> str:
    """Largest batch that keeps up (Merrill et al. 2025) vs examples seen by the base run."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    pts = [(max(c["examples"], 1), c["b_crit"], c["capped"]) for c in branched["checkpoints"]]
    x, y, capped = zip(*pts)
    ax.loglog(x, y, "o-", label="critical batch (branched)")
    for xi, yi, ci in pts:
        if ci:
            ax.annotate("≥", (xi, yi), xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("examples seen by the base run")
    ax.set_ylabel("largest batch keeping up")
    ax.set_title("Branched critical batch over training")
    ax.grid(True, which="both", alpha=0.2)
    ax.legend(fontsize=8)
    return _finish(fig, path)


def _short(value: float) -> str:
    if value is None or not math.isfinite(value):
        return "?"
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"
