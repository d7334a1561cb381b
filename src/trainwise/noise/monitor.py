r"""A training-loop monitor of the gradient noise scale that reuses what training computes.

Each optimizer step gives two squared gradient norms at two batch sizes for almost nothing, and
:mod:`trainwise.noise.estimators` turns them into unbiased single-step estimates of ``|G|²`` and
``tr(Σ)``. Three sources of the pair:

``"accumulation"``
    micro-batches under gradient accumulation: ``B_small`` = micro-batch, ``B_big`` = the
    accumulated batch. Call :meth:`NoiseScaleMonitor.micro_step` after each micro-batch's
    ``backward()``; the micro-batch gradient is the change of ``.grad`` (one parameter-sized buffer).
``"ddp"``
    torch.distributed data parallel: ``B_small`` = per-replica batch (its gradient is read inside
    a DDP communication hook, *before* the all-reduce), ``B_big`` = global batch (``.grad`` after it).
    Costs one all-reduce of two numbers per step.
``"per_example"``
    one process, no accumulation: exact per-example gradient norms from layer hooks
    (:class:`~trainwise.noise.per_example.PerExampleGradNorms`), ``B_small = 1``.

Moving averages of ``|G|²`` and ``tr(Σ)`` are kept *separately* (each estimate is unbiased, their
ratio is not), bias-corrected, with a time constant in examples, and ``B_simple`` is the ratio of
the averages. A single step's ``|G|²`` or ``tr(Σ)`` can come out negative: that is sampling noise,
it enters the averages as it is and is never clipped.

Call :meth:`NoiseScaleMonitor.step` after the backward pass and **before** gradient clipping,
``GradScaler.unscale_`` and ``optimizer.step()``: the estimators assume the raw mean gradient.
With AMP pass the current loss scale (``loss_scale=scaler.get_scale()``) or ``grad_scaler=``;
its square is divided out. Steps with a non-finite gradient norm (AMP overflow, a NaN loss) are
skipped, counted in :attr:`NoiseScaleMonitor.skipped`, and logged.

The noise scale goes as ``1/T`` with the temperature ``T = ε/B`` (SGD): each record carries
``temperature = lr / batch_size`` beside ``b_simple``, so a learning-rate decay's effect on the
noise scale can be read off.

**No host sync per step.** A measured step leaves its squared norms on the device (a few numbers in one
tensor) and returns; they are read back, all pending steps in one copy, when something reads the results
(:attr:`~NoiseScaleMonitor.history`, :attr:`~NoiseScaleMonitor.b_simple` and the other readouts,
``state_dict``, :meth:`~NoiseScaleMonitor.flush`, ``close``), every ``sync_every`` measured steps if set, and
at the latest every 1000. The records, the moving averages and the log lines are then computed by the same host
code, in step order, as with ``sync_every=1`` (the old eager behaviour): the numbers are identical.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import trainwise
from trainwise._io import JsonlSink
from trainwise.noise._params import PRECONDITIONER_MIN_STEPS, adam_preconditioner, trainable_params
from trainwise.noise._sharding import ShardingUnsupported, layout
from trainwise.noise.ema import ExampleEMA
from trainwise.noise.estimators import grad_sq_norm_estimate, trace_sigma_estimate
from trainwise.noise.sources import AccumulationSource, DDPSource, NoiseSource, PerExampleSource

__all__ = ["NoiseScaleMonitor", "PendingRecord", "SOURCES"]

SOURCES = ("per_example", "accumulation", "ddp")

#: at most this many measured steps wait on the device before they are read back (bounded memory)
MAX_PENDING = 1000


@dataclass
class _Pending:
    """A measured step whose squared norms are still on the device."""

    step: int
    examples: int
    tokens: float | None
    b_small: float
    b_big: float
    values: torch.Tensor | None  # [n] float64 on the device: the source's squared norms (+ the loss scale last)
    n_values: int
    scale: float | None  # the loss scale, when it was a host number
    gap: float  # examples of the unmeasured steps since the previous measured one
    lr: float | None
    loss: Any
    skip_reason: str | None  # known on the host at step time ("one_micro_batch")
    record: dict | None = None  # once resolved: the step's record, or its skip record
    resolved: bool = False


class PendingRecord(Mapping):
    """The record of a measured step that has not been read back from the device yet.

    A read-only mapping: the first access to a key reads back every pending step (one host sync) and then behaves
    as the record :meth:`NoiseScaleMonitor.step` returns with ``sync_every=1``. A step skipped for a non-finite
    gradient resolves to its ``{"kind": "skip", ...}`` record (with ``sync_every=1`` the step returns None):
    test ``record["kind"] == "step"``. :attr:`resolved` tells whether reading it costs a sync.
    """

    def __init__(self, monitor: NoiseScaleMonitor, entry: _Pending):
        self._monitor = monitor
        self._entry = entry

    @property
    def resolved(self) -> bool:
        return self._entry.resolved

    def _get(self) -> dict:
        if not self._entry.resolved:
            self._monitor.flush()
        assert self._entry.record is not None
        return self._entry.record

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __reduce__(self):  # pickles (all_gather_object, deepcopy) as the plain record
        return (dict, (self._get(),))

    def __repr__(self) -> str:
        return f"PendingRecord({self._entry.record!r})" if self.resolved else "PendingRecord(<on the device>)"


def _is_ddp(model: Any) -> bool:
    return isinstance(model, nn.parallel.DistributedDataParallel)


class NoiseScaleMonitor:
    r"""Track ``B_simple = tr(Σ)/|G|²`` during training.

    Args:
        model: the model (a ``DistributedDataParallel`` wrapper for ``source="ddp"``), or a model sharded by
            FSDP2 ``fully_shard`` (1-D mesh, or HSDP's 2-D mesh) for ``per_example`` and ``accumulation``: each
            rank then passes its local batch sizes and the records are of the global batch (``docs/sharded.md``).
            Tensor/pipeline parallelism and FSDP1 are refused here, in one line (``ShardingUnsupported``).
        source: ``"per_example"``, ``"accumulation"``, ``"ddp"`` or ``"auto"`` (DDP model → ``ddp``,
            else ``per_example``).
        ema_examples: time constant ``τ`` of the moving averages in examples; default
            ``ema_steps × B_big`` of the first measured step.
        ema_steps: used only to set the default ``ema_examples``.
        tokens_per_example: report batch sizes in tokens (``B_tokens = B × tokens_per_example``);
            ``tr(Σ)`` is then per token. A sequence is one example either way.
        optimizer: an Adam/AdamW optimizer, for ``precondition=True`` and for reading ``lr``.
        precondition: also measure the noise scale of ``g / (sqrt(v̂) + eps)`` (AdaptDL's
            preconditioned gradient noise), with ``v̂`` snapshotted before the step.
        layers: per-example source only: ``"all"`` parameters, or ``"norm"`` (LayerNorm/RMSNorm
            parameters alone, a cheaper proxy).
        loss_reduction: ``"mean"`` if the backward loss is the mean over the batch (default), or ``"sum"``.
        grad_scaler: a ``torch.amp.GradScaler`` whose scale is still on the gradients at ``step``.
        log_path: append one JSON line per step (format: ``docs/formats.md``); rank 0 only under DDP.
        sink: where the records go instead (anything with ``write(record)``, e.g.
            :class:`trainwise.integrations.logging.Sinks`); ``log_path`` is ``JsonlSink(log_path)``. The meta
            record goes first unless the sink's file already has content.
        meta: extra run information for the log's first line.
        keep_history: keep every record in :attr:`history` (and in ``state_dict``).
        process_group: the DDP process group (default: the world).
        every: measure every ``every``-th optimizer step only (the others cost nothing: hooks and
            micro-batch copies are off). The moving averages still decay by the examples seen since
            the last measured step, so ``ema_examples`` keeps its meaning.
        sync_every: read the measured numbers back to the host every ``sync_every`` measured steps (one copy for
            all of them). Default None: only when something reads the results (``history``, ``b_simple``,
            ``state_dict``, ``flush()``, ``close()``; at the latest every 1000 measured steps), so training
            never waits on the device for the monitor. ``sync_every=1`` is the eager behaviour of trainwise
            <= 0.x: :meth:`step` returns the finished record, or None for a skipped step.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        source: str = "auto",
        ema_examples: float | None = None,
        ema_steps: float = 100.0,
        tokens_per_example: float | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        precondition: bool = False,
        layers: str = "all",
        loss_reduction: str = "mean",
        grad_scaler: Any | None = None,
        log_path: str | Path | None = None,
        sink: Any | None = None,
        meta: dict | None = None,
        keep_history: bool = True,
        process_group: Any | None = None,
        every: int = 1,
        sync_every: int | None = None,
    ):
        if source == "auto":
            source = "ddp" if _is_ddp(model) else "per_example"
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; choose one of {SOURCES} or 'auto'")
        if loss_reduction not in ("mean", "sum"):
            raise ValueError(f"loss_reduction must be 'mean' or 'sum', got {loss_reduction!r}")
        if ema_examples is not None and not ema_examples > 0:
            raise ValueError(f"ema_examples must be > 0, got {ema_examples}")
        if tokens_per_example is not None and not tokens_per_example > 0:
            raise ValueError(f"tokens_per_example must be > 0, got {tokens_per_example}")
        if int(every) != every or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        if sync_every is not None and (int(sync_every) != sync_every or sync_every < 1):
            raise ValueError(f"sync_every must be a positive integer or None, got {sync_every!r}")
        if precondition and optimizer is None:
            raise ValueError("precondition=True needs the Adam/AdamW optimizer (optimizer=...)")
        # FSDP2/HSDP: which sums add up over which ranks; refuses TP, PP and FSDP1 here, in one line
        sharding = layout(model)
        if sharding.sharded and source == "ddp":
            raise ShardingUnsupported(f"trainwise noise scale: source='ddp' reads DDP's all-reduce; this model is "
                                      f"sharded ({sharding.kind}): use source='per_example' or 'accumulation'")
        if source == "ddp" and not _is_ddp(model):
            raise ValueError("source='ddp' needs the model wrapped in torch.nn.parallel.DistributedDataParallel")
        self.source = source
        self.module = model.module if _is_ddp(model) else model
        self.optimizer = optimizer
        self.precondition = precondition
        self.loss_reduction = loss_reduction
        self.grad_scaler = grad_scaler
        self.tokens_per_example = float(tokens_per_example) if tokens_per_example else None
        self.unit = "tokens" if self.tokens_per_example else "examples"
        self.ema_steps = float(ema_steps)
        self.log_path = Path(log_path) if log_path else None
        if sink is not None and log_path:
            raise ValueError("pass log_path or sink, not both")
        self.sink = sink if sink is not None else (JsonlSink(self.log_path, make_dirs=False) if self.log_path else None)
        self.meta = dict(meta or {})
        self.keep_history = keep_history
        self.process_group = process_group
        self.every = int(every)
        self.sync_every = int(sync_every) if sync_every is not None else None
        self._examples_since_measured = 0.0  # as of the last resolved measured step
        self._unmeasured_examples = 0.0  # unmeasured steps since the last measured step (resolved or not)
        self._pending: list[_Pending] = []

        self.params = trainable_params(self.module)
        self.layers = layers
        self.layout = sharding
        self._source: NoiseSource
        if source == "per_example":
            self._source = PerExampleSource(self.module, self.params, layers=layers, loss_reduction=loss_reduction,
                                            layout=self.layout)
            self.params = self._source.params  # "norm" measures a subset
        elif source == "accumulation":
            self._source = AccumulationSource(self.params, self.layout)
        else:
            self._source = DDPSource(model, self.params, process_group)

        self._ema_examples = float(ema_examples) if ema_examples else None
        self._emas: dict[str, ExampleEMA] = {}
        self.steps = 0  # optimizer steps seen by step(), measured or skipped
        self.examples = 0
        self.tokens = 0.0
        self._skipped: dict[str, int] = {}
        self._history: list[dict] = []
        self._meta_written = False
        self._reset_step_buffers()  # capture hooks on if the first step is measured

    # ------------------------------------------------------------------ sources
    def micro_step(self, batch_size: int) -> None:
        """Accumulation source: call after each micro-batch's ``backward()`` with its size."""
        if self.source != "accumulation":
            raise RuntimeError(f"micro_step() is for source='accumulation', this monitor uses {self.source!r}")
        measuring = self._measuring_next
        self._source.micro_step(batch_size, measuring, self._preconditioner() if measuring else None)

    @property
    def _engine(self):
        """The per-example source's hooks (None for the other sources, or once closed)."""
        return getattr(self._source, "engine", None)

    def prepare_ddp_step(self) -> None:
        """DDP with ``precondition=True``: call before the backward pass that all-reduces."""
        if isinstance(self._source, DDPSource):
            self._source.prepare(self._preconditioner())

    def _preconditioner(self) -> list[torch.Tensor] | None:
        if not self.precondition:
            return None
        return adam_preconditioner(self.optimizer, self.params, min_steps=PRECONDITIONER_MIN_STEPS)

    # ------------------------------------------------------------------ step
    @property
    def _measuring_next(self) -> bool:
        """Whether the coming optimizer step (number ``steps + 1``) is measured."""
        return (self.steps + 1) % self.every == 0

    def _loss_scale(self, loss_scale: Any) -> tuple[float | None, torch.Tensor | None]:
        """``(host scale, None)`` or ``(None, device scale)``: a scale on the device is read back with the norms."""
        if isinstance(loss_scale, torch.Tensor):
            return None, loss_scale
        if loss_scale is not None:
            return float(loss_scale), None
        if self.grad_scaler is not None and self.grad_scaler.is_enabled():
            scale = getattr(self.grad_scaler, "_scale", None)  # GradScaler.get_scale() would .item() it
            if isinstance(scale, torch.Tensor):
                return None, scale
            return float(self.grad_scaler.get_scale()), None
        return 1.0, None

    def _collect(self, batch_size: int | None):
        """(b_small, b_big, [sq_small, sq_big, sq_small_pre, sq_big_pre]) for this step, from the source."""
        return self._source.collect(batch_size, self._preconditioner())

    def _reset_step_buffers(self) -> None:
        self._source.reset(self._measuring_next)

    def _ema(self, name: str) -> ExampleEMA:
        if name not in self._emas:
            self._emas[name] = ExampleEMA(self._ema_examples)
        return self._emas[name]

    def step(
        self,
        batch_size: int | None = None,
        *,
        lr: float | None = None,
        loss: float | None = None,
        tokens: float | None = None,
        loss_scale: float | None = None,
    ) -> dict | None:
        """Measure this optimizer step. Returns its record (see ``docs/formats.md``) or None if skipped.

        ``batch_size``: the step's batch (per replica under DDP; checked against what was seen
        otherwise). ``lr``: defaults to the optimizer's first group. ``tokens``: real tokens this
        step (default ``B × tokens_per_example``).
        """
        if not self._measuring_next:
            return self._unmeasured_step(batch_size, tokens)
        b_small, b_big, values = self._collect(batch_size)
        self.steps += 1
        scale, scale_tensor = self._loss_scale(loss_scale)
        step_tokens = float(tokens) if tokens is not None else (b_big * self.tokens_per_example if self.tokens_per_example else 0.0)
        self.examples += int(b_big)
        self.tokens += step_tokens
        self._reset_step_buffers()
        if lr is None and self.optimizer is not None:
            lr = float(self.optimizer.param_groups[0]["lr"])
        stacked = None
        if b_small < b_big:
            # stays on the device: read back with the other pending steps (one copy), no host sync here
            parts = [v.double().reshape(()) for v in values]
            if scale_tensor is not None:
                parts.append(scale_tensor.detach().double().reshape(()).to(parts[0].device))
            stacked = torch.stack(parts)
        pending = _Pending(step=self.steps, examples=self.examples,
                           tokens=self.tokens if (self.tokens_per_example or tokens is not None) else None,
                           b_small=b_small, b_big=b_big, values=stacked, n_values=len(values), scale=scale,
                           gap=self._unmeasured_examples, lr=lr, loss=loss,
                           skip_reason=None if b_small < b_big else "one_micro_batch")
        self._unmeasured_examples = 0.0
        self._pending.append(pending)
        if pending.skip_reason is not None or self.sync_every == 1:
            self.flush()
            return pending.record if pending.record is not None and pending.record["kind"] == "step" else None
        handle = PendingRecord(self, pending)
        measured_pending = len(self._pending)
        if (self.sync_every is not None and measured_pending >= self.sync_every) or measured_pending >= MAX_PENDING:
            self.flush()
        return handle

    def flush(self) -> None:
        """Read every pending step back from the device (one copy, one host sync), then compute their records, the
        moving averages and the log lines in step order. Called by every readout; call it to log now."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        tensors = [p.values for p in pending if p.values is not None]
        rows = iter(torch.cat(tensors).cpu().tolist() if tensors else [])
        for entry in pending:
            numbers = [next(rows) for _ in range(entry.n_values)] if entry.values is not None else None
            scale = entry.scale if entry.scale is not None else (next(rows) if entry.values is not None else 1.0)
            entry.record = self._resolve(entry, numbers, scale)
            entry.resolved = True
            entry.values = None

    def _resolve(self, entry: _Pending, numbers: list[float] | None, scale: float) -> dict:
        """The host side of a measured step (the eager code of trainwise <= 0.x, on the read-back numbers)."""
        self._examples_since_measured += entry.gap
        b_small, b_big = entry.b_small, entry.b_big
        if numbers is not None:
            numbers = [x / scale**2 for x in numbers]
        if entry.skip_reason is not None or not all(math.isfinite(x) for x in numbers):
            self._examples_since_measured += b_big  # the averages still decay by these examples
            return self._skip(entry.skip_reason or "non_finite_gradient", loss=self._loss_value(entry.loss),
                              step=entry.step)
        if self._ema_examples is None:
            self._ema_examples = self.ema_steps * b_big
        unit_factor = self.tokens_per_example or 1.0
        lr = entry.lr
        record: dict[str, Any] = {
            "kind": "step",
            "step": entry.step,
            "examples": entry.examples,
            "tokens": entry.tokens,
            "batch_size": b_big,
            "b_small": b_small,
            "lr": lr,
            "temperature": (lr / b_big) if lr is not None else None,
            "loss": self._loss_value(entry.loss),
        }
        record.update(self._estimates("", b_small, b_big, numbers[0], numbers[1], unit_factor))
        if len(numbers) == 4:
            record["precond"] = self._estimates("precond_", b_small, b_big, numbers[2], numbers[3], unit_factor)
        self._examples_since_measured = 0.0
        if self.keep_history:
            self._history.append(record)
        self._log(record)
        return record

    @staticmethod
    def _loss_value(loss: Any) -> float | None:
        return float(loss) if loss is not None else None

    def _unmeasured_step(self, batch_size: int | None, tokens: float | None) -> None:
        examples = self._source.unmeasured_examples(batch_size)
        if not examples:
            raise ValueError("with every > 1, pass batch_size to step() on the steps that are not measured")
        self.steps += 1
        self.examples += int(examples)
        self._unmeasured_examples += examples
        self.tokens += float(tokens) if tokens is not None else examples * (self.tokens_per_example or 0.0)
        self._reset_step_buffers()
        return None

    def _estimates(self, prefix: str, b_small, b_big, sq_small, sq_big, unit_factor) -> dict[str, float]:
        grad_sq = grad_sq_norm_estimate(b_small, sq_small, b_big, sq_big)
        trace = trace_sigma_estimate(b_small, sq_small, b_big, sq_big)
        decay_examples = b_big + self._examples_since_measured
        g_ema = self._ema(prefix + "grad_sq_norm").update(grad_sq, decay_examples)
        t_ema = self._ema(prefix + "trace_sigma").update(trace, decay_examples)
        return {
            "grad_sq_norm": grad_sq,
            "trace_sigma": trace * unit_factor,
            "grad_sq_norm_ema": g_ema,
            "trace_sigma_ema": t_ema * unit_factor,
            "b_simple": unit_factor * t_ema / g_ema if g_ema != 0 else math.nan,
        }

    def _skip(self, reason: str, loss: float | None = None, step: int | None = None) -> dict:
        step = self.steps if step is None else step
        self._skipped[reason] = self._skipped.get(reason, 0) + 1
        if reason == "non_finite_gradient" and self._skipped[reason] in (1, 10, 100, 1000):
            warnings.warn(
                f"NoiseScaleMonitor: step {step} has a non-finite gradient norm and was not measured "
                f"({self._skipped[reason]} such steps so far)",
                RuntimeWarning,
                stacklevel=3,
            )
        record = {"kind": "skip", "step": step, "reason": reason, "loss": loss}
        self._log(record)
        return record

    @property
    def history(self) -> list[dict]:
        """Every measured step's record (``keep_history=True``); reading it reads back the pending steps."""
        self.flush()
        return self._history

    @property
    def skipped(self) -> dict[str, int]:
        """Steps not measured, by reason (``non_finite_gradient``, ``one_micro_batch``)."""
        self.flush()
        return self._skipped

    # ------------------------------------------------------------------ readouts
    def _ratio(self, prefix: str) -> float:
        self.flush()
        g, t = self._emas.get(prefix + "grad_sq_norm"), self._emas.get(prefix + "trace_sigma")
        if g is None or t is None or g.value == 0:
            return math.nan
        return (self.tokens_per_example or 1.0) * t.value / g.value

    @property
    def b_simple(self) -> float:
        """Current ``B_simple`` (ratio of the moving averages) in :attr:`unit`; NaN before the first step."""
        return self._ratio("")

    @property
    def b_simple_preconditioned(self) -> float:
        return self._ratio("precond_")

    @property
    def grad_sq_norm(self) -> float:
        self.flush()
        ema = self._emas.get("grad_sq_norm")
        return ema.value if ema else math.nan

    @property
    def trace_sigma(self) -> float:
        self.flush()
        ema = self._emas.get("trace_sigma")
        return ema.value * (self.tokens_per_example or 1.0) if ema else math.nan

    @property
    def ema_examples(self) -> float | None:
        self.flush()
        return self._ema_examples

    # ------------------------------------------------------------------ logging
    def _is_logging_rank(self) -> bool:
        if self.source != "ddp" and not self.layout.sharded:
            return True
        import torch.distributed as dist

        return dist.get_rank() == 0

    def _sink_has_content(self) -> bool:
        has_content = getattr(self.sink, "has_content", None)
        return bool(has_content()) if callable(has_content) else False

    def _log(self, record: dict) -> None:
        if self.sink is None or not self._is_logging_rank():
            return
        if not self._meta_written:
            if not self._sink_has_content():
                self.sink.write(self.meta_record())
            self._meta_written = True
        self.sink.write(record)

    def _truncate_log(self, step: int) -> None:
        """Resume: keep the log's lines up to the restored ``step`` (the meta line and the records of steps
        ``<= step``) and drop what a run killed after its last checkpoint wrote past it (and a torn last line),
        so the resumed run's log is the uninterrupted run's. Only a :class:`~trainwise._io.JsonlSink` file."""
        sinks = [self.sink, *getattr(self.sink, "sinks", ())]  # a JsonlSink, or one inside a Sinks fan-out
        jsonl = next((sink for sink in sinks if isinstance(sink, JsonlSink)), None)
        if jsonl is None or not jsonl.path.exists() or not self._is_logging_rank():
            return
        path = jsonl.path
        with path.open("r", encoding="utf-8") as fh:
            lines = fh.read().split("\n")
        kept = []
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break  # a line torn by the kill: it and everything after are the killed run's
            if isinstance(record, dict) and isinstance(record.get("step"), (int, float)) and record["step"] > step:
                break
            kept.append(line)
        text = "".join(line + "\n" for line in kept)
        if len(kept) == sum(1 for line in lines if line.strip()) and text == "\n".join(lines).rstrip("\n") + "\n":
            return  # nothing past the restored step
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)

    def meta_record(self) -> dict:
        return {
            "kind": "meta",
            "trainwise_version": trainwise.__version__,
            "source": self.source,
            "layers": self.layers if self.source == "per_example" else None,
            "unit": self.unit,
            "tokens_per_example": self.tokens_per_example,
            "ema_examples": self._ema_examples,
            "precondition": self.precondition,
            **self.meta,
        }

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        self.flush()
        return {
            "version": 1,
            "source": self.source,
            "unit": self.unit,
            "tokens_per_example": self.tokens_per_example,
            "ema_examples": self._ema_examples,
            "emas": {name: ema.state_dict() for name, ema in self._emas.items()},
            "steps": self.steps,
            "examples": self.examples,
            "tokens": self.tokens,
            "skipped": dict(self._skipped),
            "examples_since_measured": self._examples_since_measured + self._unmeasured_examples,
            "history": [dict(r) for r in self._history],
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("version") != 1:
            raise ValueError(f"unsupported NoiseScaleMonitor state version {state.get('version')!r}")
        if state["source"] != self.source or state["unit"] != self.unit:
            raise ValueError(
                f"state was saved by a monitor with source={state['source']!r}, unit={state['unit']!r}; "
                f"this one has source={self.source!r}, unit={self.unit!r}"
            )
        self._ema_examples = state["ema_examples"]
        self._emas = {}
        for name, ema_state in state["emas"].items():
            ema = ExampleEMA(ema_state["tau_examples"])
            ema.load_state_dict(ema_state)
            self._emas[name] = ema
        self.steps = int(state["steps"])
        self.examples = int(state["examples"])
        self.tokens = float(state["tokens"])
        self._skipped = dict(state["skipped"])
        self._examples_since_measured = float(state.get("examples_since_measured", 0.0))
        self._unmeasured_examples = 0.0
        self._pending = []
        self._history = [dict(r) for r in state["history"]]
        self._truncate_log(self.steps)
        self._meta_written = self.sink is not None and self._sink_has_content()
        self._reset_step_buffers()

    def pause(self) -> None:
        """Per-example source: stop capturing (e.g. around evaluation or probe passes with grad)."""
        if isinstance(self._source, PerExampleSource):
            self._source.pause()

    def resume(self) -> None:
        """Undo :meth:`pause` (capture again if the coming step is one that is measured)."""
        if isinstance(self._source, PerExampleSource):
            self._source.resume(self._measuring_next)

    def log(self, record: dict) -> None:
        """Append an extra record (e.g. ``{"kind": "hessian", ...}``) to the log, if any (after the pending steps)."""
        self.flush()
        self._log(record)

    def close(self) -> None:
        """Read back the pending steps and remove the hooks (per-example source)."""
        self.flush()
        self._source.close()
