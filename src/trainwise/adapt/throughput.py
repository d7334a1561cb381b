r"""A step-time model fitted from measured optimizer steps (the throughput half of AdaptDL's goodput).

One optimizer step of global batch ``B`` made of ``k`` micro-batches per replica takes

    t(B, k) = t_step + k·t_micro + B·t_example      (all coefficients ≥ 0)

``t_step``: per optimizer step (all-reduce, optimizer update); ``t_micro``: per forward/backward
launch; ``t_example``: per example (per replica the work is ``B/world`` but the replicas run in
parallel, so ``t_example`` absorbs ``1/world``). The fit is a non-negative least squares over the
median time of each configuration seen (exact for three coefficients: every active set is tried).
Throughput is ``B / t(B, k)`` examples per second.
"""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np

__all__ = ["StepTimeModel"]

_FEATURES = ("t_step", "t_micro", "t_example")


class StepTimeModel:
    """Collect ``(B, k, seconds)`` and predict the step time of other configurations.

    Args:
        window: how many recent timings to keep per configuration (their median is fitted).
    """

    def __init__(self, window: int = 50):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = int(window)
        self.timings: dict[tuple[int, int], list[float]] = {}
        self.coefficients: dict[str, float] | None = None

    def observe(self, batch_size: int, accumulation_steps: int, seconds: float) -> None:
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"step time must be a finite number of seconds > 0, got {seconds!r}")
        if batch_size < 1 or accumulation_steps < 1:
            raise ValueError(f"batch_size and accumulation_steps must be >= 1, got {batch_size}, {accumulation_steps}")
        times = self.timings.setdefault((int(batch_size), int(accumulation_steps)), [])
        times.append(float(seconds))
        del times[: -self.window]
        self.coefficients = None

    @property
    def configurations(self) -> int:
        return len(self.timings)

    @property
    def fitted(self) -> bool:
        """True once two configurations with different batch sizes were timed (the fit is identified)."""
        return len({b for b, _ in self.timings}) >= 2

    def fit(self) -> dict[str, float]:
        """Non-negative least squares of the medians; with one configuration, ``t = B·t_example``."""
        if not self.timings:
            raise RuntimeError("StepTimeModel has no timings yet; call observe() first")
        rows, targets, weights = [], [], []
        for (batch, accum), times in sorted(self.timings.items()):
            rows.append([1.0, float(accum), float(batch)])
            targets.append(statistics.median(times))
            weights.append(math.sqrt(len(times)))
        X = np.asarray(rows) * np.asarray(weights)[:, None]
        y = np.asarray(targets) * np.asarray(weights)
        if not self.fitted:
            columns = [(2,)]
        else:
            columns = [c for r in (1, 2, 3) for c in itertools.combinations(range(3), r)]
        best, best_residual = None, math.inf
        for active in columns:
            coef, *_ = np.linalg.lstsq(X[:, active], y, rcond=None)
            if np.any(coef < 0):
                continue
            residual = float(np.sum((X[:, active] @ coef - y) ** 2))
            if residual < best_residual - 1e-15:
                best, best_residual = dict(zip(active, coef.tolist())), residual
        assert best is not None  # the single-column fits of positive times are non-negative
        self.coefficients = {name: float(best.get(i, 0.0)) for i, name in enumerate(_FEATURES)}
        return self.coefficients

    def step_time(self, batch_size: float, accumulation_steps: int) -> float:
        c = self.coefficients or self.fit()
        return c["t_step"] + accumulation_steps * c["t_micro"] + batch_size * c["t_example"]

    def throughput(self, batch_size: float, accumulation_steps: int) -> float:
        """Examples per second."""
        return batch_size / self.step_time(batch_size, accumulation_steps)

    def state_dict(self) -> dict:
        return {"window": self.window, "timings": [[b, k, list(t)] for (b, k), t in self.timings.items()]}

    def load_state_dict(self, state: dict) -> None:
        self.window = int(state["window"])
        self.timings = {(int(b), int(k)): [float(x) for x in t] for b, k, t in state["timings"]}
        self.coefficients = None
