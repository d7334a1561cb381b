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

import json
import math
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

import trainwise
from trainwise.noise._params import adam_preconditioner, grad_sq_norm, trainable_params
from trainwise.noise.ema import ExampleEMA
from trainwise.noise.estimators import effective_small_batch, grad_sq_norm_estimate, trace_sigma_estimate
from trainwise.noise.per_example import PerExampleGradNorms

__all__ = ["NoiseScaleMonitor", "SOURCES"]

SOURCES = ("per_example", "accumulation", "ddp")


def _is_ddp(model: Any) -> bool:
    return isinstance(model, nn.parallel.DistributedDataParallel)


class NoiseScaleMonitor:
    r"""Track ``B_simple = tr(Σ)/|G|²`` during training.

    Args:
        model: the model (a ``DistributedDataParallel`` wrapper for ``source="ddp"``).
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
        self.meta = dict(meta or {})
        self.keep_history = keep_history
        self.process_group = process_group
        self.every = int(every)
        self._examples_since_measured = 0.0

        self.params = trainable_params(self.module)
        self._engine: PerExampleGradNorms | None = None
        if source == "per_example":
            self._engine = PerExampleGradNorms(self.module, self.params, layers=layers)
            self.params = self._engine.params  # "norm" measures a subset
        self.layers = layers
        self._micro: list[tuple[float, torch.Tensor, torch.Tensor | None]] = []
        self._grad_buffer: list[torch.Tensor] | None = None
        self._ddp_local = None  # tensor [2]: local |g|², local |g/P|²
        self._ddp_preconditioner: dict[int, torch.Tensor] | None = None
        if source == "ddp":
            model.register_comm_hook(state=None, hook=self._comm_hook)

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
        if batch_size < 1:
            raise ValueError(f"micro-batch size must be >= 1, got {batch_size}")
        if not self._measuring_next:
            self._micro.append((float(batch_size), None, None))
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        preconditioner = self._preconditioner()
        if self._grad_buffer is None:  # one persistent parameter-sized buffer, allocated once
            self._grad_buffer = [torch.empty_like(g) for g in grads]
        if not self._micro:
            delta = grads  # first micro-batch of the step: .grad is its contribution
        else:
            # buffer holds .grad after the previous micro-batch: buffer − .grad = −(this contribution)
            torch._foreach_sub_(self._grad_buffer, grads)
            delta = self._grad_buffer
        sq = grad_sq_norm(delta)
        sq_pre = grad_sq_norm(delta, preconditioner) if preconditioner is not None else None
        torch._foreach_copy_(self._grad_buffer, grads)
        self._micro.append((float(batch_size), sq, sq_pre))

    def _comm_hook(self, state, bucket):
        import torch.distributed as dist

        buffer = bucket.buffer()
        # float32 accumulation for float32/half gradients, float64 for float64 ones; no copy
        norm_dtype = torch.float32 if buffer.element_size() <= 4 else None
        local = torch.linalg.vector_norm(buffer, 2, dtype=norm_dtype).double().pow(2)
        local_pre = torch.zeros_like(local)
        if self._ddp_preconditioner is not None:
            for param, grad in zip(bucket.parameters(), bucket.gradients()):
                precond = self._ddp_preconditioner.get(id(param))
                if precond is not None:
                    local_pre += (grad / precond).double().pow(2).sum()
        pair = torch.stack([local, local_pre])
        self._ddp_local = pair if self._ddp_local is None else self._ddp_local + pair
        group = self.process_group if self.process_group is not None else dist.group.WORLD
        buffer.div_(dist.get_world_size(group))
        future = dist.all_reduce(buffer, group=group, async_op=True).get_future()
        return future.then(lambda fut: fut.value()[0])

    def prepare_ddp_step(self) -> None:
        """DDP with ``precondition=True``: call before the backward pass that all-reduces."""
        pre = self._preconditioner()
        self._ddp_preconditioner = None if pre is None else {id(p): P for p, P in zip(self.params, pre)}

    def _preconditioner(self) -> list[torch.Tensor] | None:
        if not self.precondition:
            return None
        return adam_preconditioner(self.optimizer, self.params)

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
        """(b_small, b_big, [sq_small, sq_big, sq_small_pre, sq_big_pre]) for this step."""
        preconditioner = self._preconditioner()
        if self.source == "per_example":
            assert self._engine is not None
            pre = None if preconditioner is None else {id(p): P for p, P in zip(self.params, preconditioner)}
            if pre is None:
                per_example, pre_example = self._engine.norms(), None
            else:
                per_example, pre_example = self._engine.norms_and_preconditioned(pre)
            b_big = per_example.numel()
            if batch_size is not None and batch_size != b_big:
                raise ValueError(f"batch_size={batch_size} but the captured batch has {b_big} examples")
            factor = float(b_big) ** 2 if self.loss_reduction == "mean" else 1.0
            grads = [p.grad for p in self.params if p.grad is not None]
            values = [per_example.double().mean() * factor, grad_sq_norm(grads) * (factor / b_big**2)]
            if pre_example is not None:
                grads_pre = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
                values += [pre_example.double().mean() * factor, grad_sq_norm(grads_pre, preconditioner) * (factor / b_big**2)]
            return 1.0, float(b_big), values
        if self.source == "accumulation":
            if not self._micro:
                raise RuntimeError("source='accumulation': call micro_step(batch_size) after each micro-batch backward")
            sizes = [b for b, _, _ in self._micro]
            b_big = sum(sizes)
            if batch_size is not None and batch_size != b_big:
                raise ValueError(f"batch_size={batch_size} but the micro-batches add up to {b_big:g}")
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
            # micro-batch j contributes (b_j/B)·G_j to the accumulated gradient: undo that weight
            sq_small = torch.stack([sq * (b_big / b) ** 2 for b, sq, _ in self._micro]).mean()
            values = [sq_small, grad_sq_norm(grads)]
            if preconditioner is not None and all(pre is not None for _, _, pre in self._micro):
                values += [torch.stack([pre * (b_big / b) ** 2 for b, _, pre in self._micro]).mean(),
                           grad_sq_norm(grads, preconditioner)]
            return effective_small_batch(sizes), b_big, values
        # ddp
        import torch.distributed as dist

        if batch_size is None:
            raise ValueError("source='ddp': pass the per-replica batch size, step(batch_size=...)")
        if self._ddp_local is None:
            raise RuntimeError("source='ddp': no all-reduce happened since the last step (every backward under no_sync?)")
        group = self.process_group if self.process_group is not None else dist.group.WORLD
        world = dist.get_world_size(group)
        if world < 2:
            raise RuntimeError("source='ddp' needs at least 2 replicas; use 'per_example' or 'accumulation'")
        local = self._ddp_local.to(self.params[0].device)
        dist.all_reduce(local, group=group)
        local = local / world
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        values = [local[0], grad_sq_norm(grads)]
        if self._ddp_preconditioner is not None and preconditioner is not None:
            values += [local[1], grad_sq_norm(grads, preconditioner)]
        return float(batch_size), float(batch_size * world), values

    def _reset_step_buffers(self) -> None:
        self._micro.clear()
        self._ddp_local = None
        if self._engine is not None:
            if self._measuring_next:
                self._engine.start()
            else:
                self._engine.stop()

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
        if self.source == "accumulation":
            examples = sum(b for b, _, _ in self._micro) if self._micro else (batch_size or 0)
        elif self.source == "ddp":
            import torch.distributed as dist

            group = self.process_group if self.process_group is not None else dist.group.WORLD
            examples = (batch_size or 0) * dist.get_world_size(group)
        else:
            examples = batch_size or 0
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
        if self.source != "ddp":
            return True
        import torch.distributed as dist

        return dist.get_rank() == 0

    def _log(self, record: dict) -> None:
        if self.log_path is None or not self._is_logging_rank():
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", encoding="utf-8") as fh:
            if not self._meta_written:
                if self.log_path.stat().st_size == 0:
                    fh.write(json.dumps(self.meta_record()) + "\n")
                self._meta_written = True
            fh.write(json.dumps(record) + "\n")

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
        self._meta_written = self.log_path is not None and self.log_path.exists() and self.log_path.stat().st_size > 0
        self._reset_step_buffers()

    def pause(self) -> None:
        """Per-example source: stop capturing (e.g. around evaluation or probe passes with grad)."""
        if self._engine is not None:
            self._engine.stop()

    def resume(self) -> None:
        """Undo :meth:`pause` (capture again if the coming step is one that is measured)."""
        if self._engine is not None and self._measuring_next:
            self._engine.start()

    def log(self, record: dict) -> None:
        """Append an extra record (e.g. ``{"kind": "hessian", ...}``) to the JSONL log, if any."""
        self._log(record)

    def close(self) -> None:
        """Remove the hooks (per-example source)."""
        if self._engine is not None:
            self._engine.remove()
            self._engine = None
