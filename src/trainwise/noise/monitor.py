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
"""

from __future__ import annotations

import math
import warnings
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

__all__ = ["NoiseScaleMonitor", "SOURCES"]

SOURCES = ("per_example", "accumulation", "ddp")


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
        self._examples_since_measured = 0.0

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
        self.skipped: dict[str, int] = {}
        self.history: list[dict] = []
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

    def _loss_scale(self, loss_scale: float | None) -> float:
        if loss_scale is not None:
            return float(loss_scale)
        if self.grad_scaler is not None and self.grad_scaler.is_enabled():
            return float(self.grad_scaler.get_scale())
        return 1.0

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
        scale = self._loss_scale(loss_scale)
        numbers = torch.stack([v.double().reshape(()) for v in values]).cpu().tolist()
        numbers = [x / scale**2 for x in numbers]
        step_tokens = float(tokens) if tokens is not None else (b_big * self.tokens_per_example if self.tokens_per_example else 0.0)
        self.examples += int(b_big)
        self.tokens += step_tokens
        self._reset_step_buffers()
        if lr is None and self.optimizer is not None:
            lr = float(self.optimizer.param_groups[0]["lr"])
        if not all(math.isfinite(x) for x in numbers) or b_small >= b_big:
            self._examples_since_measured += b_big  # the averages still decay by these examples
            reason = "one_micro_batch" if b_small >= b_big else "non_finite_gradient"
            return self._skip(reason, loss=loss)
        if self._ema_examples is None:
            self._ema_examples = self.ema_steps * b_big
        unit_factor = self.tokens_per_example or 1.0
        record: dict[str, Any] = {
            "kind": "step",
            "step": self.steps,
            "examples": self.examples,
            "tokens": self.tokens if (self.tokens_per_example or tokens is not None) else None,
            "batch_size": b_big,
            "b_small": b_small,
            "lr": lr,
            "temperature": (lr / b_big) if lr is not None else None,
            "loss": float(loss) if loss is not None else None,
        }
        record.update(self._estimates("", b_small, b_big, numbers[0], numbers[1], unit_factor))
        if len(numbers) == 4:
            record["precond"] = self._estimates("precond_", b_small, b_big, numbers[2], numbers[3], unit_factor)
        self._examples_since_measured = 0.0
        if self.keep_history:
            self.history.append(record)
        self._log(record)
        return record

    def _unmeasured_step(self, batch_size: int | None, tokens: float | None) -> None:
        examples = self._source.unmeasured_examples(batch_size)
        if not examples:
            raise ValueError("with every > 1, pass batch_size to step() on the steps that are not measured")
        self.steps += 1
        self.examples += int(examples)
        self._examples_since_measured += examples
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

    def _skip(self, reason: str, loss: float | None = None) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if reason == "non_finite_gradient" and self.skipped[reason] in (1, 10, 100, 1000):
            warnings.warn(
                f"NoiseScaleMonitor: step {self.steps} has a non-finite gradient norm and was not measured "
                f"({self.skipped[reason]} such steps so far)",
                RuntimeWarning,
                stacklevel=3,
            )
        self._log({"kind": "skip", "step": self.steps, "reason": reason, "loss": loss})
        return None

    # ------------------------------------------------------------------ readouts
    def _ratio(self, prefix: str) -> float:
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
        ema = self._emas.get("grad_sq_norm")
        return ema.value if ema else math.nan

    @property
    def trace_sigma(self) -> float:
        ema = self._emas.get("trace_sigma")
        return ema.value * (self.tokens_per_example or 1.0) if ema else math.nan

    @property
    def ema_examples(self) -> float | None:
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
            "skipped": dict(self.skipped),
            "examples_since_measured": self._examples_since_measured,
            "history": [dict(r) for r in self.history],
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
        self.skipped = dict(state["skipped"])
        self._examples_since_measured = float(state.get("examples_since_measured", 0.0))
        self.history = [dict(r) for r in state["history"]]
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
        """Append an extra record (e.g. ``{"kind": "hessian", ...}``) to the log, if any."""
        self._log(record)

    def close(self) -> None:
        """Remove the hooks (per-example source)."""
        self._source.close()
