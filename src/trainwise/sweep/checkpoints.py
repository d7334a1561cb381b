"""Which checkpoints of a sweep run to keep: in memory while it trains, and on disk for the Hessian probe."""

from __future__ import annotations

__all__ = ["thin_checkpoints", "pick_checkpoints"]


def thin_checkpoints(checkpoints: dict[int, dict], max_checkpoints: int) -> None:
    """Keep at most ``max_checkpoints`` snapshots in memory, roughly geometric in step: while over, drop the
    interior one whose neighbours are closest in ratio (the first and the newest are always kept).

    >>> kept = {s: {} for s in (0, 1, 2, 3, 4, 8, 16)}
    >>> thin_checkpoints(kept, 4); sorted(kept)
    [0, 1, 4, 16]
    """
    while len(checkpoints) > max(max_checkpoints, 3):
        keys = sorted(checkpoints)
        drop = min(range(1, len(keys) - 1), key=lambda i: (keys[i + 1] + 1) / (keys[i - 1] + 1))
        del checkpoints[keys[drop]]


def pick_checkpoints(available: list[int], first: float, last: float, count: int) -> list[int]:
    """Up to ``count`` of the available checkpoint steps in ``[first, last]``, nearest to the quadratically spaced
    steps ``first + (last − first)·(i/count)²``: denser early, where the noise scale changes fastest, while each
    still stands for a fair share of the steps."""
    inside = [s for s in available if first <= s <= last and s > 0]
    if len(inside) <= count:
        return inside
    chosen: list[int] = []
    for i in range(1, count + 1):
        want = first + (last - first) * (i / count) ** 2
        best = min((s for s in inside if s not in chosen), key=lambda s: abs(s - want), default=None)
        if best is not None:
            chosen.append(best)
    return sorted(chosen)
