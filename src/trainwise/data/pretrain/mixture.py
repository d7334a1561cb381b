"""Mixture planner: per-source sampling weights with epoch caps for a token budget.

Each source ``s`` has ``n_s`` tokens, a quality ``q_s ∈ (0, 1]`` (mean ``density_score`` of its kept
documents, or 1) and a preference ``p_s`` (epochs-per-source style, docs/science.md §7: The Pile gave Wikipedia
3.0 epochs, PG-19 2.5, arXiv/PubMed/StackExchange 2.0, Pile-CC 1.0; LLaMA-1 Wikipedia 2.45, Books 2.23,
CommonCrawl 1.10). As in those mixtures, a source is seen ``e_s`` times with

    e_s = min(λ · p_s · q_s, c_s),      Σ_s e_s · n_s = B,

where ``c_s`` is the source's epoch cap (default 4: repeating data up to ~4 epochs costs little, Muennighoff
et al. 2023, arXiv:2305.16264) and ``λ`` is found exactly (the left side is piecewise linear and increasing
in ``λ``). The sampling weight of ``s`` is ``w_s = e_s · n_s / B``. When even every source at its cap gives
fewer than ``B`` tokens the plan is marked infeasible and uses the caps.

:class:`MixtureSampler` turns weights into a deterministic source sequence (smooth weighted round-robin) with
``state_dict()``/``load_state_dict()`` so a data loader resumes mid-epoch exactly.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

__all__ = ["MixtureSource", "MixturePlan", "plan_mixture", "parse_token_count", "MixtureSampler"]

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def parse_token_count(value: str | int | float) -> float:
    """``"300B"`` → 3e11, ``"1.5M"`` → 1.5e6, ``2e9`` → 2e9 (suffixes k, M, B/G, T; optional 'tok')."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*([kmbgt]?)\s*(?:tok(?:ens)?)?\s*", str(value), re.I)
        if not match:
            raise ValueError(f"cannot read a token count from {value!r}; write e.g. 300B, 1.5M or 2e9")
        number = float(match.group(1)) * _SUFFIX[match.group(2).lower()]
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"token budget must be a positive finite number, got {value!r}")
    return number


@dataclass
class MixtureSource:
    name: str
    tokens: float
    preference: float = 1.0
    quality: float = 1.0
    max_epochs: float | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        for what in ("tokens", "preference", "quality"):
            value = getattr(self, what)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"source {self.name!r}: {what} must be a finite number >= 0, got {value!r}")
        if self.max_epochs is not None and (not math.isfinite(self.max_epochs) or self.max_epochs <= 0):
            raise ValueError(f"source {self.name!r}: max_epochs must be > 0, got {self.max_epochs!r}")


@dataclass
class MixturePlan:
    budget_tokens: float
    total_tokens: float
    feasible: bool
    scale: float
    sources: list[dict[str, Any]] = field(default_factory=list)

    def weights(self) -> dict[str, float]:
        return {row["name"]: row["weight"] for row in self.sources}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        head = f"{'source':<16} {'available':>12} {'pref':>5} {'quality':>7} {'cap':>5} {'epochs':>7} {'tokens':>12} {'weight':>7}"
        lines = [head, "-" * len(head)]
        for r in self.sources:
            lines.append(f"{r['name']:<16} {_fmt(r['available_tokens']):>12} {r['preference']:>5.2f} {r['quality']:>7.3f} "
                         f"{r['max_epochs']:>5.2f} {r['epochs']:>7.3f} {_fmt(r['tokens']):>12} {r['weight']:>7.4f}")
        lines.append(f"budget {_fmt(self.budget_tokens)} tokens; planned {_fmt(self.total_tokens)}"
                     + ("" if self.feasible else "  (INFEASIBLE: every source is at its epoch cap)"))
        return "\n".join(lines)


def _fmt(x: float) -> str:
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.2f}{suffix}"
    return f"{x:.0f}"


def plan_mixture(sources: Sequence[MixtureSource], budget_tokens: float | str, max_epochs: float = 4.0) -> MixturePlan:
    """Solve ``Σ_s min(λ a_s, c_s) n_s = B`` with ``a_s = p_s q_s`` (see module docstring).

    >>> plan = plan_mixture([MixtureSource("books", 100, preference=2.5), MixtureSource("web", 1000)], 1000)
    >>> round(plan.sources[0]["epochs"] / plan.sources[1]["epochs"], 6)
    2.5
    """
    budget = parse_token_count(budget_tokens)
    if not sources:
        raise ValueError("plan_mixture needs at least one source")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"source names must be unique, got {names}")
    appetite = [s.preference * s.quality for s in sources]
    caps = [s.max_epochs if s.max_epochs is not None else max_epochs for s in sources]
    n = [float(s.tokens) for s in sources]

    def total(lam: float) -> float:
        return sum(min(lam * a, c) * t for a, c, t in zip(appetite, caps, n))

    capacity = sum(c * t for a, c, t in zip(appetite, caps, n) if a > 0)
    if capacity <= 0:
        raise ValueError("no source can contribute tokens (all have zero tokens, preference or quality)")
    feasible = capacity >= budget * (1 - 1e-12)
    if not feasible:
        lam = max(c / a for a, c in zip(appetite, caps) if a > 0)
    else:
        # breakpoints λ_s = c_s / a_s; between them total(λ) is linear: find the segment, then solve exactly
        breaks = sorted({c / a for a, c in zip(appetite, caps) if a > 0})
        lo = 0.0
        lam = breaks[-1]
        for b in breaks:
            if total(b) >= budget:
                slope = sum(a * t for a, c, t in zip(appetite, caps, n) if a > 0 and c / a > lo)
                lam = lo + (budget - total(lo)) / slope
                break
            lo = b
    epochs = [min(lam * a, c) for a, c in zip(appetite, caps)]
    planned = [e * t for e, t in zip(epochs, n)]
    planned_total = sum(planned)
    rows = []
    for s, e, tok, cap in zip(sources, epochs, planned, caps):
        rows.append({"name": s.name, "path": s.path, "available_tokens": s.tokens, "preference": s.preference,
                     "quality": s.quality, "max_epochs": cap, "epochs": e, "tokens": tok,
                     "weight": tok / planned_total if planned_total else 0.0, "at_cap": e >= cap * (1 - 1e-9)})
    return MixturePlan(budget_tokens=budget, total_tokens=planned_total, feasible=feasible, scale=lam, sources=rows)


class MixtureSampler:
    """Deterministic source sequence with the given weights (smooth weighted round-robin).

    Each draw adds ``w_s`` to every source's credit, picks the largest credit and subtracts ``Σ w`` from it;
    after ``k`` draws every source has been picked ``k · w_s / Σ w`` times up to less than one.

    >>> sampler = MixtureSampler({"books": 0.25, "web": 0.75})
    >>> [sampler.next() for _ in range(4)]
    ['web', 'books', 'web', 'web']
    """

    def __init__(self, weights: Mapping[str, float]):
        if not weights:
            raise ValueError("MixtureSampler needs at least one source weight")
        for name, w in weights.items():
            if not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
                raise ValueError(f"weight of {name!r} must be a finite number >= 0, got {w!r}")
        self.names = list(weights)
        self.weights = [float(weights[n]) for n in self.names]
        self.total = sum(self.weights)
        if self.total <= 0:
            raise ValueError(f"weights must not all be zero, got {dict(weights)}")
        self.credit = [0.0] * len(self.names)
        self.draws = 0

    def next(self) -> str:
        for i, w in enumerate(self.weights):
            self.credit[i] += w
        best = max(range(len(self.names)), key=lambda i: (self.credit[i], -i))
        self.credit[best] -= self.total
        self.draws += 1
        return self.names[best]

    def state_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "weights": list(self.weights), "credit": list(self.credit), "draws": self.draws}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if list(state["names"]) != self.names:
            raise ValueError(f"state is for sources {state['names']}, this sampler has {self.names}")
        self.weights = [float(w) for w in state["weights"]]
        self.total = sum(self.weights)
        self.credit = [float(c) for c in state["credit"]]
        self.draws = int(state["draws"])
