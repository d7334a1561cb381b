"""Multi-task mixing: a resumable PyTorch sampler over tasks of very different sizes.

Mixing rates (Raffel et al. 2020, T5, arXiv:1910.10683, §3.5.2; docs/science.md §7), for task ``m``
with ``e_m`` examples, an artificial size limit ``K`` and a temperature ``T``:

* examples-proportional with cap: ``r_m = min(e_m, K) / Σ_n min(e_n, K)``
* temperature-scaled:             ``r_m ∝ min(e_m, K)^(1/T)``  (``T = 1`` is the proportional rule;
  mT5's ``p ∝ n^0.3`` is ``T = 1/0.3``; ``T → ∞`` is equal mixing)

:class:`TaskMixtureSampler` draws a task from ``r`` at every step, then the next example of that
task from a per-task permutation that is reshuffled at each pass over the task (sampling without
replacement inside a task, so small tasks cycle through all their examples before repeating).
Every random choice is a pure function of ``(seed, position in the stream)``, so the whole state
is a handful of integers (``draws`` and the per-task counts): :meth:`state_dict` /
:meth:`load_state_dict` resume the identical stream, and :meth:`state_dict` with
``consumed=n`` rewinds to the ``n``-th index when a DataLoader has prefetched beyond what the
training loop used. The effective number of epochs of task ``m`` after ``N`` draws is
``count_m / e_m`` (expected ``N r_m / e_m``).
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Literal, Mapping, Sequence

import numpy as np
from torch.utils.data import ConcatDataset, Dataset, Sampler

__all__ = ["mixing_rates", "expected_epochs", "TaskMixtureSampler", "mixture_table"]

_BLOCK = 4096  # task choices are drawn in blocks; block b uses the generator seeded by (seed, b)
_TASK_STREAM, _PERM_STREAM = 0, 1


def mixing_rates(
    sizes: Mapping[str, int] | Sequence[int],
    mode: Literal["proportional", "temperature", "equal"] = "proportional",
    cap: float | None = None,
    temperature: float = 1.0,
) -> np.ndarray:
    """T5 mixing rates ``r_m ∝ min(e_m, K)^(1/T)`` (``mode="proportional"`` forces ``T = 1``).

    >>> mixing_rates([100, 10], cap=50).round(3).tolist()
    [0.833, 0.167]
    """
    values = list(sizes.values()) if isinstance(sizes, Mapping) else list(sizes)
    if not values:
        raise ValueError("need at least one task")
    e = np.asarray(values, dtype=float)
    if np.any(~np.isfinite(e)) or np.any(e < 0):
        raise ValueError(f"task sizes must be finite and >= 0, got {values!r}")
    if e.sum() <= 0:
        raise ValueError(f"all task sizes are zero: {values!r}")
    if cap is not None and not cap > 0:
        raise ValueError(f"cap K must be > 0, got {cap!r}")
    capped = np.minimum(e, cap) if cap is not None else e
    if mode == "equal":
        weights = (capped > 0).astype(float)
    elif mode == "proportional":
        weights = capped
    elif mode == "temperature":
        if not (temperature > 0 and math.isfinite(temperature)):
            raise ValueError(f"temperature T must be a finite number > 0, got {temperature!r}")
        weights = capped ** (1.0 / temperature)
    else:
        raise ValueError(f"unknown mixing mode {mode!r}; use 'proportional', 'temperature' or 'equal'")
    return weights / weights.sum()


def expected_epochs(sizes: Sequence[int], rates: Sequence[float], total: int) -> np.ndarray:
    """``N r_m / e_m``: expected passes over task ``m`` in ``N = total`` draws."""
    e = np.asarray(sizes, dtype=float)
    return np.where(e > 0, total * np.asarray(rates) / np.maximum(e, 1), 0.0)


def mixture_table(names: Sequence[str], sizes: Sequence[int], rates: Sequence[float], total: int,
                  counts: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """One row per task: size, rate, expected (and, with ``counts``, realised) examples and epochs."""
    rows = []
    for m, name in enumerate(names):
        row = {"task": name, "examples": int(sizes[m]), "rate": float(rates[m]),
               "expected_draws": float(total * rates[m]),
               "expected_epochs": float(total * rates[m] / sizes[m]) if sizes[m] else 0.0}
        if counts is not None:
            row["draws"] = int(counts[m])
            row["epochs"] = float(counts[m] / sizes[m]) if sizes[m] else 0.0
        rows.append(row)
    return rows


class TaskMixtureSampler(Sampler[int]):
    """Indices into the concatenation of several task datasets, mixed by T5 rates.

    Parameters
    ----------
    sizes : ``{task: e_m}`` (or a sequence, tasks then named ``task0, task1, ...``); indices of task
        ``m`` are offset by ``Σ_{n<m} e_n``, matching ``torch.utils.data.ConcatDataset`` in the same order.
    mode, cap, temperature : the mixing rule, see :func:`mixing_rates`.
    num_samples : indices per ``iter()`` (one "epoch" of the DataLoader); default ``Σ min(e_m, K)``.
        Iteration continues the same endless stream: epoch ``j`` yields draws ``[j·n, (j+1)·n)``.
    shuffle : reshuffle each task at each of its passes (else take it in order).
    seed : the stream is a deterministic function of the seed.
    rank, world_size : data-parallel sharding. Every rank follows the same global stream in groups
        of ``world_size`` draws and yields the draw at offset ``rank`` of each group, so the ranks
        together see exactly the single-process stream; ``counts``/``draws`` are global (after
        ``n`` indices on each rank, ``draws = n·world_size``), and an "epoch" is ``num_samples``
        rounded up to a multiple of ``world_size``, ``len()`` = that divided by ``world_size``.

    Example
    -------
    >>> sampler = TaskMixtureSampler({"gsm8k": 7473, "dolly": 1000}, mode="temperature", temperature=2.0)
    >>> loader = torch.utils.data.DataLoader(sampler.concat(datasets), sampler=sampler, batch_size=8)  # doctest: +SKIP
    """

    def __init__(
        self,
        sizes: Mapping[str, int] | Sequence[int],
        mode: Literal["proportional", "temperature", "equal"] = "proportional",
        cap: float | None = None,
        temperature: float = 1.0,
        num_samples: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank!r}, world_size={world_size!r}")
        self.rank, self.world_size = int(rank), int(world_size)
        if isinstance(sizes, Mapping):
            self.names = [str(k) for k in sizes]
            values = list(sizes.values())
        else:
            values = list(sizes)
            self.names = [f"task{m}" for m in range(len(values))]
        for name, size in zip(self.names, values):
            if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
                raise ValueError(f"size of task {name!r} must be an integer >= 0, got {size!r}")
        self.sizes = np.asarray(values, dtype=np.int64)
        self.mode, self.cap, self.temperature = mode, cap, float(temperature)
        self.rates = mixing_rates(values, mode=mode, cap=cap, temperature=temperature)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
        capped = np.minimum(self.sizes, cap) if cap is not None else self.sizes
        self.num_samples = int(num_samples) if num_samples is not None else int(np.sum(capped))
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples!r}")
        self.global_per_epoch = -(-self.num_samples // self.world_size) * self.world_size
        self.shuffle, self.seed = bool(shuffle), int(seed)
        self._cdf = np.cumsum(self.rates)
        self._cdf[-1] = 1.0
        self.draws = 0
        self.counts = np.zeros(len(self.sizes), dtype=np.int64)
        self._perm_cache: dict[int, tuple[int, np.ndarray]] = {}
        self._block_cache: tuple[int, np.ndarray] | None = None

    # ---- construction helpers -------------------------------------------------------------
    @classmethod
    def from_datasets(cls, datasets: Mapping[str, Dataset] | Sequence[Dataset], **kwargs: Any) -> "TaskMixtureSampler":
        """Sizes from ``len()`` of each dataset; pair with :meth:`concat` (same order)."""
        if isinstance(datasets, Mapping):
            return cls({name: len(ds) for name, ds in datasets.items()}, **kwargs)  # type: ignore[arg-type]
        return cls([len(ds) for ds in datasets], **kwargs)  # type: ignore[arg-type]

    @staticmethod
    def concat(datasets: Mapping[str, Dataset] | Sequence[Dataset]) -> ConcatDataset:
        return ConcatDataset(list(datasets.values()) if isinstance(datasets, Mapping) else list(datasets))

    # ---- the stream ------------------------------------------------------------------------
    def _task_block(self, block: int) -> np.ndarray:
        if self._block_cache is not None and self._block_cache[0] == block:
            return self._block_cache[1]
        uniform = np.random.default_rng([self.seed, _TASK_STREAM, block]).random(_BLOCK)
        tasks = np.searchsorted(self._cdf, uniform, side="right").clip(max=len(self.sizes) - 1)
        self._block_cache = (block, tasks)
        return tasks

    def _tasks(self, start: int, stop: int) -> np.ndarray:
        """Task ids of draws ``[start, stop)``."""
        if stop <= start:
            return np.zeros(0, dtype=np.int64)
        first, last = start // _BLOCK, (stop - 1) // _BLOCK
        tasks = np.concatenate([self._task_block(b) for b in range(first, last + 1)])
        return tasks[start - first * _BLOCK : stop - first * _BLOCK]

    def _permutation(self, task: int, epoch: int) -> np.ndarray:
        cached = self._perm_cache.get(task)
        if cached is not None and cached[0] == epoch:
            return cached[1]
        size = int(self.sizes[task])
        perm = (np.random.default_rng([self.seed, _PERM_STREAM, task, epoch]).permutation(size)
                if self.shuffle else np.arange(size))
        self._perm_cache[task] = (epoch, perm)
        return perm

    def _peek(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The next ``count`` (global index, task) pairs, without advancing the state."""
        tasks = self._tasks(self.draws, self.draws + count)
        indices = np.empty(count, dtype=np.int64)
        for task in np.unique(tasks):
            where = np.flatnonzero(tasks == task)
            size = int(self.sizes[task])
            ranks = int(self.counts[task]) + np.arange(len(where))  # how many of this task came before
            epochs, offsets = np.divmod(ranks, size)
            for epoch in np.unique(epochs):
                in_epoch = epochs == epoch
                indices[where[in_epoch]] = self.offsets[task] + self._permutation(int(task), int(epoch))[offsets[in_epoch]]
        return indices, tasks

    def _take(self, count: int) -> np.ndarray:
        indices, tasks = self._peek(count)
        self.counts += np.bincount(tasks, minlength=len(self.sizes)).astype(np.int64)
        self.draws += count
        return indices

    def __iter__(self) -> Iterator[int]:
        # continue the current "epoch" of num_samples draws (a resumed run finishes it); the state
        # advances one index at a time, so state_dict() taken between batches is exact
        world, rank = self.world_size, self.rank
        remaining = self.global_per_epoch - (self.draws % self.global_per_epoch)
        if remaining % world:
            raise ValueError(f"draws={self.draws} is not a multiple of world_size={world}; was take() used on a sharded sampler?")
        while remaining > 0:
            indices, tasks = self._peek(min(remaining, 1024 * world))
            if world == 1:
                for index, task in zip(indices.tolist(), tasks.tolist()):
                    self.draws += 1
                    self.counts[task] += 1
                    remaining -= 1
                    yield index
                continue
            for group in range(0, len(indices), world):
                self.draws += world
                self.counts += np.bincount(tasks[group : group + world], minlength=len(self.sizes))
                remaining -= world
                yield int(indices[group + rank])

    def __len__(self) -> int:
        return self.global_per_epoch // self.world_size

    def take(self, count: int) -> np.ndarray:
        """Draw ``count`` indices now (outside a DataLoader), continuing the stream."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count!r}")
        return self._take(count)

    def task_of(self, index: int) -> str:
        """The task name of a global index."""
        task = int(np.searchsorted(self.offsets, index, side="right") - 1)
        if not 0 <= index < int(self.sizes.sum()):
            raise ValueError(f"index {index!r} is outside [0, {int(self.sizes.sum())})")
        return self.names[task]

    # ---- reporting -------------------------------------------------------------------------
    def effective_epochs(self) -> dict[str, float]:
        """``count_m / e_m`` so far, per task."""
        return {n: (float(c / s) if s else 0.0) for n, c, s in zip(self.names, self.counts, self.sizes)}

    def report(self, total: int | None = None) -> list[dict[str, Any]]:
        """Per task: size, rate, expected draws and epochs over ``total`` (default: draws so far) and realised ones."""
        total = self.draws if total is None else total
        return mixture_table(self.names, self.sizes.tolist(), self.rates.tolist(), total,
                             counts=self.counts.tolist() if total == self.draws else None)

    # ---- state -----------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {"names": list(self.names), "sizes": self.sizes.tolist(), "mode": self.mode, "cap": self.cap,
                "temperature": self.temperature, "num_samples": self.num_samples, "shuffle": self.shuffle,
                "seed": self.seed, "world_size": self.world_size}

    def state_dict(self, consumed: int | None = None) -> dict[str, Any]:
        """``draws`` so far and the exact per-task counts, plus the configuration they refer to.

        ``consumed``: record the state after only the first ``consumed`` draws (for a DataLoader
        that prefetched indices the model never saw); counts are recomputed by replaying the task
        choices, which are a function of the seed alone.
        """
        if consumed is None:
            draws, counts = self.draws, self.counts.tolist()
        else:
            if not 0 <= consumed <= self.draws:
                raise ValueError(f"consumed must be in [0, draws={self.draws}], got {consumed!r}")
            draws = int(consumed)
            counts = np.bincount(self._tasks(0, draws), minlength=len(self.sizes)).tolist() if draws else [0] * len(self.sizes)
        return {"draws": int(draws), "counts": [int(c) for c in counts], "config": self._config()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume: the next index is the one the saved sampler would have produced next."""
        config = state.get("config")
        if config is not None and config != self._config():
            changed = {k: (config.get(k), v) for k, v in self._config().items() if config.get(k) != v}
            raise ValueError(f"state was saved by a sampler with a different configuration: {changed!r} (saved, current)")
        counts = np.asarray(state["counts"], dtype=np.int64)
        if counts.shape != self.counts.shape or counts.sum() != int(state["draws"]):
            raise ValueError(f"inconsistent state: counts {counts.tolist()!r} do not sum to draws={state['draws']!r}")
        self.draws = int(state["draws"])
        self.counts = counts.copy()
        self._perm_cache.clear()
