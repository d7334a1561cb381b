"""An interactive steps/data trade-off chart for the HTML report: hand-written SVG plus a few lines of script.

No plotting library and no network: the curves are drawn here, in Python, as SVG (so the chart shows without
script too); the embedded script only follows the pointer and reads off the plan's closed forms at any batch
``B``:

    S(B) = S_min (1 + B_crit/B),    E(B) = E_min (1 + B/B_crit)

with wall-clock, device-hours and FLOPs proportional to the data ``E`` (the plan computes them as data over
throughput, and ``6 N D``), so one ratio per quantity taken from the plan's table carries them to any batch.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

from trainwise._format import short as _short

__all__ = ["tradeoff_chart"]

_W, _H = 640, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 16, 14, 40

_SCRIPT = """
(function(){
  var box=document.getElementById(%(id)s), svg=box.querySelector('svg'), p=JSON.parse(box.getAttribute('data-plan'));
  var tip=box.querySelector('.tw-tip'), line=svg.querySelector('.tw-cursor'), ds=svg.querySelector('.tw-dot-s'),
      de=svg.querySelector('.tw-dot-e');
  function fmt(v){if(v===null||!isFinite(v))return '–';var a=Math.abs(v),s=[[1e12,'T'],[1e9,'B'],[1e6,'M'],[1e3,'k']];
    for(var i=0;i<s.length;i++){if(a>=s[i][0])return (v/s[i][0]).toPrecision(3)+s[i][1];}return v.toPrecision(3);}
  function x2b(x){return Math.exp(p.lx0+(x-p.x0)/(p.x1-p.x0)*(p.lx1-p.lx0));}
  function y(r){return p.y0-(Math.log(r)-p.ly0)/(p.ly1-p.ly0)*(p.y0-p.y1);}
  function show(evt){
    var pt=svg.createSVGPoint(), src=evt.touches?evt.touches[0]:evt; pt.x=src.clientX; pt.y=src.clientY;
    var loc=pt.matrixTransform(svg.getScreenCTM().inverse()), x=Math.min(Math.max(loc.x,p.x0),p.x1), b=x2b(x);
    var rs=1+p.bc/b, re=1+b/p.bc, data=p.emin*re, rows=[['batch',fmt(b)+' '+p.unit],['steps',fmt(p.smin*rs)+' ('+rs.toFixed(2)+'× S_min)'],
      [p.unit,fmt(data)+' ('+re.toFixed(2)+'× E_min)']];
    if(p.h!==null)rows.push(['wall-clock',fmt(data*p.h)+' h']);
    if(p.dh!==null)rows.push(['device-hours',fmt(data*p.dh)]);
    if(p.fl!==null)rows.push(['compute',fmt(data*p.fl)+' FLOPs']);
    tip.innerHTML=rows.map(function(r){return '<b>'+r[0]+'</b> '+r[1];}).join('<br>');
    line.setAttribute('x1',x);line.setAttribute('x2',x);line.style.display='';
    ds.setAttribute('cx',x);ds.setAttribute('cy',y(rs));de.setAttribute('cx',x);de.setAttribute('cy',y(re));
    ds.style.display='';de.style.display='';
  }
  svg.addEventListener('mousemove',show);svg.addEventListener('touchstart',show,{passive:true});
  svg.addEventListener('touchmove',show,{passive:true});
})();
"""


def _ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten inside ``[lo, hi]``, with 2× and 5× steps when fewer than three decades show."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    decades = [10.0**k for k in range(first, last + 1)]
    ticks = [d * m for d in decades for m in ((1, 2, 5) if last - first < 3 else (1,))]
    return [t for t in ticks if lo <= t <= hi]


def tradeoff_chart(plan: dict, chart_id: str) -> str:
    """HTML (a ``<div>`` with an inline SVG and its script) for the plan's trade-off; ``""`` without one."""
    rows, tradeoff, b_crit = plan.get("table") or [], plan.get("tradeoff") or {}, (plan.get("b_crit") or {}).get("value")
    s_min, e_min = tradeoff.get("s_min"), tradeoff.get("e_min")
    if not rows or not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in (s_min, e_min, b_crit)):
        return ""
    unit = plan.get("unit", "examples")
    sizes = [r["batch_size"] for r in rows]
    b_lo, b_hi = min(sizes + [b_crit]) / 1.5, max(sizes + [b_crit]) * 1.5
    ratios = [1 + b_crit / b_lo, 1 + b_hi / b_crit]
    r_lo, r_hi = 1.0, max(ratios) * 1.2
    lx0, lx1, ly0, ly1 = math.log(b_lo), math.log(b_hi), math.log(r_lo), math.log(r_hi)
    x0, x1, y0, y1 = _LEFT, _W - _RIGHT, _H - _BOTTOM, _TOP

    def px(b: float) -> float:
        return x0 + (math.log(b) - lx0) / (lx1 - lx0) * (x1 - x0)

    def py(r: float) -> float:
        return y0 - (math.log(r) - ly0) / (ly1 - ly0) * (y0 - y1)

    grid = [math.exp(lx0 + (lx1 - lx0) * i / 120) for i in range(121)]
    steps_path = "M" + " L".join(f"{px(b):.1f},{py(1 + b_crit / b):.1f}" for b in grid)
    data_path = "M" + " L".join(f"{px(b):.1f},{py(1 + b / b_crit):.1f}" for b in grid)
    parts = [f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="#fff" stroke="#bbb"/>']
    for t in _ticks(b_lo, b_hi):
        parts.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{y1}" y2="{y0}" stroke="#eee"/>'
                     f'<text x="{px(t):.1f}" y="{y0 + 14}" text-anchor="middle">{_short(t)}</text>')
    for t in [r for r in (1, 1.5, 2, 3, 5, 10, 20, 50, 100, 1000) if r_lo <= r <= r_hi]:
        parts.append(f'<line x1="{x0}" x2="{x1}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#eee"/>'
                     f'<text x="{x0 - 5}" y="{py(t) + 4:.1f}" text-anchor="end">{t:g}×</text>')
    parts.append(f'<path d="{steps_path}" fill="none" stroke="#1f77b4" stroke-width="2"/>'
                 f'<path d="{data_path}" fill="none" stroke="#d62728" stroke-width="2"/>')
    parts.append(f'<line x1="{px(b_crit):.1f}" x2="{px(b_crit):.1f}" y1="{y1}" y2="{y0}" stroke="#555" stroke-dasharray="4 3"/>'
                 f'<text x="{px(b_crit) + 4:.1f}" y="{y1 + 12}">B_crit ≈ {_short(b_crit)}</text>')
    recommended = (plan.get("recommendation") or {}).get("batch_size")
    if isinstance(recommended, (int, float)) and b_lo < recommended < b_hi:
        parts.append(f'<circle cx="{px(recommended):.1f}" cy="{py(1 + b_crit / recommended):.1f}" r="5" fill="none" '
                     f'stroke="#2ca02c" stroke-width="2.5"><title>recommended batch {_short(recommended)}</title></circle>')
    parts.append(f'<text x="{x1 - 4}" y="{y1 + 12}" text-anchor="end" fill="#1f77b4">steps S/S_min</text>'
                 f'<text x="{x1 - 4}" y="{y1 + 26}" text-anchor="end" fill="#d62728">data E/E_min</text>'
                 f'<text x="{(x0 + x1) / 2}" y="{_H - 6}" text-anchor="middle">batch size ({html.escape(unit)}), log scale</text>')
    parts.append(f'<line class="tw-cursor" x1="0" x2="0" y1="{y1}" y2="{y0}" stroke="#000" style="display:none"/>'
                 '<circle class="tw-dot-s" r="4" fill="#1f77b4" style="display:none"/>'
                 '<circle class="tw-dot-e" r="4" fill="#d62728" style="display:none"/>')

    def per_data(key: str) -> float | None:
        row = next((r for r in rows if isinstance(r.get(key), (int, float)) and r[key] > 0), None)
        if row is None:
            return None
        data = row["tokens"] if unit == "tokens" else row["examples"]
        return row[key] / data if data else None

    params: dict[str, Any] = {
        "unit": unit, "bc": b_crit, "smin": s_min, "emin": e_min, "x0": x0, "x1": x1, "y0": y0, "y1": y1,
        "lx0": lx0, "lx1": lx1, "ly0": ly0, "ly1": ly1,
        "h": per_data("wall_clock_h"), "dh": per_data("device_hours"), "fl": per_data("flops"),
    }
    svg = (f'<svg viewBox="0 0 {_W} {_H}" role="img" aria-label="steps and data against batch size" '
           f'style="width:100%;height:auto;font-size:11px;touch-action:pan-y">{"".join(parts)}</svg>')
    return (f'<div class="tw-chart" id="{chart_id}" data-plan="{html.escape(json.dumps(params))}">{svg}'
            f'<div class="tw-tip">Point at the chart (or touch it) to read steps, data, time and compute at any batch.</div>'
            f'</div><script>{_SCRIPT % {"id": json.dumps(chart_id)}}</script>')
