"""Plot of the noise scale over training (``trainwise measure``)."""

from __future__ import annotations

from pathlib import Path

from trainwise.report._mpl import pyplot

__all__ = ["plot_noise_scale"]


def plot_noise_scale(measurement: dict, path: str | Path) -> Path:
    """Two panels: B_simple (monitor EMA, every step) and B_simple/B_noise at checkpoints with
    95% error bars, on a log scale; held-out loss and temperature lr/B below."""
    plt = pyplot()
    meta, steps, checkpoints = measurement["meta"], measurement["steps"], measurement["checkpoints"]
    unit = meta.get("unit", "examples")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    xs = [r["step"] for r in steps]
    ema = [r["b_simple"] for r in steps]
    top.plot(xs, ema, color="#9ecae1", lw=1.2, label="B_simple, monitor (moving average)")
    if steps and "b_simple_precond" in steps[-1]:
        pre = [(r["step"], r["b_simple_precond"]) for r in steps if "b_simple_precond" in r]
        top.plot(*zip(*pre), color="#c6dbef", lw=1.0, ls="--", label="B_simple, Adam-preconditioned")
    for name, color, marker in (("b_simple", "#08519c", "o"), ("b_noise", "#d94801", "s")):
        pts = [(c["step"], c[name]["value"], c[name]["stderr"]) for c in checkpoints
               if c.get(name) and c[name]["value"] is not None and c[name]["value"] > 0 and c[name]["stderr"] is not None]
        if pts:
            sx, sy, se = zip(*pts)
            # on a log axis a bar reaching zero or below is drawn down to y/20 (the value is that uncertain)
            lower = [min(0.95 * y, 1.96 * e) for y, e in zip(sy, se)]
            top.errorbar(sx, sy, yerr=[lower, [1.96 * e for e in se]], fmt=marker, color=color, capsize=3,
                         label=f"{'B_simple' if name == 'b_simple' else 'B_noise (Hessian-vector products)'} at checkpoint, 95%")
    summary = measurement.get("summary", {})
    if summary.get("b_noise", {}).get("value"):
        top.axhline(summary["b_noise"]["value"], color="#d94801", lw=0.8, ls=":",
                    label=f"B_noise, window mean = {summary['b_noise']['value']:.3g}")
    top.set_yscale("log")
    values = [v for v in ema if v and v > 0] + [c[n]["value"] for c in checkpoints for n in ("b_simple", "b_noise")
                                                 if c.get(n) and c[n]["value"] and c[n]["value"] > 0]
    if values:
        top.set_ylim(min(values) / 3, max(values) * 3)
    top.set_ylabel(f"noise scale ({unit})")
    top.set_title(f"Gradient noise scale — {meta.get('task', '')}, batch {meta.get('batch_size')}, lr {meta.get('lr'):g}")
    top.grid(True, which="both", alpha=0.3)
    top.legend(fontsize=8, loc="best")
    cx = [c["step"] for c in checkpoints]
    bottom.plot(cx, [c["loss"] for c in checkpoints], "o-", color="#238b45", label="held-out loss")
    bottom.set_ylabel("held-out loss")
    bottom.set_xlabel("optimizer step")
    bottom.grid(True, alpha=0.3)
    temperatures = [r["temperature"] for r in steps if r.get("temperature") is not None]
    lines = bottom.get_legend_handles_labels()[0]
    if temperatures and max(temperatures) > 1.01 * min(temperatures):
        twin = bottom.twinx()
        twin.plot(xs, [r.get("temperature") for r in steps], color="#756bb1", lw=1, label="temperature lr/B")
        twin.set_ylabel("temperature lr/B")
        twin.set_ylim(0, 1.15 * max(temperatures))  # from zero: no offset, a changing schedule reads as a shape
        twin.ticklabel_format(axis="y", style="sci", scilimits=(0, 0), useOffset=False)
        lines = lines + twin.get_legend_handles_labels()[0]
    elif temperatures:  # constant: one number in the legend, not a flat line on its own axis
        lines = lines + [bottom.plot([], [], " ", label=f"temperature lr/B = {temperatures[0]:.3g} (constant)")[0]]
    bottom.legend(lines, [line.get_label() for line in lines], fontsize=8, loc="upper right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
