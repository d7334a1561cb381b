r"""Where a step's two squared gradient norms come from: one class per source, behind one small interface.

Each source gives, for an optimizer step, ``(B_small, B_big, [|G_small|², |G_big|², |P⁻¹G_small|², |P⁻¹G_big|²])``
(the preconditioned pair only when a preconditioner is given), which
:func:`~trainwise.noise.estimators.grad_sq_norm_estimate` and :func:`~trainwise.noise.estimators.trace_sigma_estimate`
turn into the unbiased per-step ``|G|²`` and ``tr(Σ)``. :class:`~trainwise.noise.monitor.NoiseScaleMonitor` holds one.

* :class:`PerExampleSource`: exact per-example gradient norms from layer hooks, ``B_small = 1``.
* :class:`AccumulationSource`: micro-batches under gradient accumulation, ``B_small`` = the harmonic mean of the
  micro-batch sizes (:func:`~trainwise.noise.estimators.effective_small_batch`), ``B_big`` = their sum.
* :class:`DDPSource`: data-parallel replicas, ``B_small`` = per-replica batch (read in a DDP communication hook,
  before the all-reduce), ``B_big`` = global batch.

A new source implements :class:`NoiseSource` and is added to :data:`SOURCE_CLASSES`.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from trainwise.noise._params import grad_sq_norm
from trainwise.noise._sharding import Layout, is_dtensor, local
from trainwise.noise.estimators import effective_small_batch
from trainwise.noise.per_example import PerExampleGradNorms

__all__ = ["NoiseSource", "PerExampleSource", "AccumulationSource", "DDPSource", "SOURCE_CLASSES"]


class NoiseSource(Protocol):
    """What the monitor needs from a source of the two squared norms."""

    name: str
    params: list[torch.Tensor]

    def collect(self, batch_size: int | None, preconditioner: list[torch.Tensor] | None
                ) -> tuple[float, float, list[torch.Tensor]]:
        """``(B_small, B_big, values)`` for the step that just finished its backward passes."""

    def unmeasured_examples(self, batch_size: int | None) -> float:
        """Examples of a step that is not measured (``every > 1``)."""

    def reset(self, measuring_next: bool) -> None:
        """Clear the step's buffers; capture (or not) for the coming step."""

    def close(self) -> None: ...


def _grads(params: list[torch.Tensor]) -> list[torch.Tensor]:
    return [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]


def _local_grads(params: list[torch.Tensor]) -> list[torch.Tensor]:
    """This rank's part of each gradient (the local shard under FSDP2), zeros where there is none."""
    return [local(p.grad) if p.grad is not None else torch.zeros_like(local(p)) for p in params]


class PerExampleSource:
    """Exact per-example gradient norms, ``B_small = 1``: one process, or FSDP2/HSDP (each rank measures its own
    examples from the activations and output gradients it holds in full; the sums are added over the
    data-parallel ranks and ``|G_B|²`` over the gradient shards, in one all-reduce)."""

    name = "per_example"

    def __init__(self, module: nn.Module, params: list[torch.Tensor], *, layers: str = "all",
                 loss_reduction: str = "mean", layout: Layout | None = None):
        self.engine: PerExampleGradNorms | None = PerExampleGradNorms(module, params, layers=layers)
        self.params = self.engine.params  # "norm" measures a subset
        self.loss_reduction = loss_reduction
        self.layout = layout or Layout()
        self._checked_local_batch: int | None = None

    def collect(self, batch_size, preconditioner):
        assert self.engine is not None
        pre = None if preconditioner is None else {
            id(p): (P.full_tensor() if is_dtensor(P) else P) for p, P in zip(self.params, preconditioner)}
        if pre is None:
            per_example, pre_example = self.engine.norms(), None
        else:
            per_example, pre_example = self.engine.norms_and_preconditioned(pre)
        b_local = per_example.numel()
        if batch_size is not None and batch_size != b_local:
            raise ValueError(f"batch_size={batch_size} but the captured batch has {b_local} examples")
        factor = float(b_local) ** 2 if self.loss_reduction == "mean" else 1.0
        grads = [p.grad for p in self.params if p.grad is not None]
        # local sums: Σ_i |g_i|² over this rank's examples; |.grad|² over this rank's shards
        example_sums = [per_example.double().sum() * factor]
        grad_sums = [grad_sq_norm(grads) * (factor / b_local**2)]
        if pre_example is not None:
            example_sums.append(pre_example.double().sum() * factor)
            grad_sums.append(grad_sq_norm(_grads(self.params), preconditioner) * (factor / b_local**2))
        b_big = b_local
        if self.layout.sharded:
            device = per_example.device
            example_sums.append(torch.tensor(float(b_local), dtype=torch.float64, device=device))
            grad_total, example_total = self.layout.reduce(
                torch.stack([v.to(device) for v in grad_sums]), torch.stack([v.to(device) for v in example_sums]))
            b_big = b_local * self.layout.dp_size
            if self._checked_local_batch != b_local:  # a host read only when this rank's batch changes
                total = float(example_total[-1])
                if total != b_big:
                    raise ValueError(f"FSDP: the data-parallel ranks have different local batches ({total:g} examples in "
                                     f"all, this rank {b_local}); the reduced gradient is then not the batch mean")
                self._checked_local_batch = b_local
            grad_sums, example_sums = list(grad_total), list(example_total[:-1])
        values = [example_sums[0] / b_big, grad_sums[0]]
        if pre_example is not None:
            values += [example_sums[1] / b_big, grad_sums[1]]
        return 1.0, float(b_big), values

    def unmeasured_examples(self, batch_size):
        return (batch_size or 0) * self.layout.dp_size

    def reset(self, measuring_next: bool) -> None:
        if self.engine is not None:
            if measuring_next:
                self.engine.start()
            else:
                self.engine.stop()

    def pause(self) -> None:
        if self.engine is not None:
            self.engine.stop()

    def resume(self, measuring_next: bool) -> None:
        if self.engine is not None and measuring_next:
            self.engine.start()

    def close(self) -> None:
        if self.engine is not None:
            self.engine.remove()
            self.engine = None


class AccumulationSource:
    """Micro-batches under gradient accumulation: call :meth:`micro_step` after each micro-batch's backward; the
    micro-batch gradient is the change of ``.grad`` (one parameter-sized buffer, allocated once).

    Under FSDP2/HSDP ``.grad`` is this rank's shard of the gradient reduce-scattered after every micro-batch
    (FSDP2's default), so a micro-batch is the union of the ranks' micro-batches: the local squared norms of
    the shards are kept as tensors and added over the shard group in one all-reduce at :meth:`collect`.
    """

    name = "accumulation"

    def __init__(self, params: list[torch.Tensor], layout: Layout | None = None):
        self.params = params
        self.layout = layout or Layout()
        self.micro: list[tuple[float, Any, Any]] = []  # (size, |g_j|², |P⁻¹g_j|²), local sums under FSDP2
        self._grad_buffer: list[torch.Tensor] | None = None

    def micro_step(self, batch_size: int, measuring: bool, preconditioner: list[torch.Tensor] | None) -> None:
        if batch_size < 1:
            raise ValueError(f"micro-batch size must be >= 1, got {batch_size}")
        size = float(batch_size * self.layout.dp_size)
        if not measuring:
            self.micro.append((size, None, None))
            return
        grads = _local_grads(self.params)
        if self._grad_buffer is None:
            self._grad_buffer = [torch.empty_like(g) for g in grads]
        if not self.micro:
            delta = grads  # first micro-batch of the step: .grad is its contribution
        else:
            # buffer holds .grad after the previous micro-batch: buffer − .grad = −(this contribution)
            torch._foreach_sub_(self._grad_buffer, grads)
            delta = self._grad_buffer
        sq = grad_sq_norm(delta)
        sq_pre = grad_sq_norm(delta, preconditioner) if preconditioner is not None else None
        torch._foreach_copy_(self._grad_buffer, grads)
        self.micro.append((size, sq, sq_pre))

    def collect(self, batch_size, preconditioner):
        if not self.micro:
            raise RuntimeError("source='accumulation': call micro_step(batch_size) after each micro-batch backward")
        sizes = [b for b, _, _ in self.micro]
        b_big = sum(sizes)
        expected = None if batch_size is None else batch_size * self.layout.dp_size
        if expected is not None and expected != b_big:
            raise ValueError(f"batch_size={batch_size} but the micro-batches add up to {b_big / self.layout.dp_size:g}")
        grads = _local_grads(self.params)
        precond = preconditioner is not None and all(pre is not None for _, _, pre in self.micro)
        sums = [sq for _, sq, _ in self.micro] + [grad_sq_norm(grads)]
        if precond:
            sums += [pre for _, _, pre in self.micro] + [grad_sq_norm(grads, preconditioner)]
        sums = torch.stack([v.reshape(()) for v in sums])
        if self.layout.sharded:
            sums, _ = self.layout.reduce(sums)
        k = len(self.micro)
        weights = torch.tensor([(b_big / b) ** 2 for b in sizes], dtype=sums.dtype, device=sums.device)
        # micro-batch j contributes (b_j/B)·G_j to the accumulated gradient: undo that weight
        values = [(sums[:k] * weights).mean(), sums[k]]
        if precond:
            values += [(sums[k + 1 : 2 * k + 1] * weights).mean(), sums[2 * k + 1]]
        return effective_small_batch(sizes), b_big, values

    def unmeasured_examples(self, batch_size):
        return sum(b for b, _, _ in self.micro) if self.micro else (batch_size or 0) * self.layout.dp_size

    def reset(self, measuring_next: bool) -> None:
        self.micro.clear()

    def close(self) -> None:
        pass

class DDPSource:
    """torch.distributed data parallel: the per-replica squared norm is read before the all-reduce; one all-reduce
    of two numbers per step.

    Without a communication hook of the user's, a DDP communication hook reads each bucket (one fused norm per
    bucket) and all-reduces it as DDP would. When the model already has one (``register_comm_hook`` with bf16/fp16
    compression, PowerSGD, ...), which DDP allows only once, the user's hook stays in charge of the communication
    and the local norms are read in per-parameter post-accumulate-grad hooks instead, on the backward pass that
    synchronises (the local, uncompressed gradient; one norm kernel per parameter).
    """

    name = "ddp"

    def __init__(self, model: nn.Module, params: list[torch.Tensor], process_group: Any | None = None):
        self.params = params
        self.process_group = process_group
        self.local: torch.Tensor | None = None  # [2]: local |g|², local |g/P|²
        self.preconditioner: dict[int, torch.Tensor] | None = None
        self._handles = []
        self._ddp = model
        self.mode = "comm_hook"
        if getattr(model, "_comm_hooks", None):
            self._use_grad_hooks(model)
        else:
            try:
                model.register_comm_hook(state=None, hook=self._comm_hook)
            except RuntimeError as exc:  # a built-in hook (register_builtin_comm_hook) is already there
                if "once" not in str(exc):
                    raise
                self._use_grad_hooks(model)

    def _use_grad_hooks(self, model: nn.Module) -> None:
        if getattr(model, "gradient_as_bucket_view", False):
            raise ValueError("source='ddp': the model has a communication hook of its own and "
                             "gradient_as_bucket_view=True, so its gradients are overwritten by the all-reduce "
                             "while the backward pass runs; build DDP with gradient_as_bucket_view=False")
        self.mode = "grad_hooks"
        for p in self.params:
            self._handles.append(p.register_post_accumulate_grad_hook(self._grad_hook))

    def _grad_hook(self, param: torch.Tensor) -> None:
        if not self._ddp.require_backward_grad_sync or param.grad is None:  # under no_sync(): not this pass
            return
        grad = param.grad
        norm_dtype = torch.float32 if grad.element_size() <= 4 else None
        local = torch.linalg.vector_norm(grad, 2, dtype=norm_dtype).double().pow(2)
        local_pre = torch.zeros_like(local)
        if self.preconditioner is not None and id(param) in self.preconditioner:
            local_pre = (grad / self.preconditioner[id(param)]).double().pow(2).sum()
        pair = torch.stack([local, local_pre])
        self.local = pair if self.local is None else self.local + pair

    def _group(self):
        import torch.distributed as dist

        return self.process_group if self.process_group is not None else dist.group.WORLD

    def _comm_hook(self, state, bucket):
        import torch.distributed as dist

        buffer = bucket.buffer()
        # float32 accumulation for float32/half gradients, float64 for float64 ones; no copy
        norm_dtype = torch.float32 if buffer.element_size() <= 4 else None
        local = torch.linalg.vector_norm(buffer, 2, dtype=norm_dtype).double().pow(2)
        local_pre = torch.zeros_like(local)
        if self.preconditioner is not None:
            for param, grad in zip(bucket.parameters(), bucket.gradients()):
                precond = self.preconditioner.get(id(param))
                if precond is not None:
                    local_pre += (grad / precond).double().pow(2).sum()
        pair = torch.stack([local, local_pre])
        self.local = pair if self.local is None else self.local + pair
        group = self._group()
        buffer.div_(dist.get_world_size(group))
        future = dist.all_reduce(buffer, group=group, async_op=True).get_future()
        return future.then(lambda fut: fut.value()[0])

    def prepare(self, preconditioner: list[torch.Tensor] | None) -> None:
        self.preconditioner = None if preconditioner is None else {id(p): P for p, P in zip(self.params, preconditioner)}

    def collect(self, batch_size, preconditioner):
        import torch.distributed as dist

        if batch_size is None:
            raise ValueError("source='ddp': pass the per-replica batch size, step(batch_size=...)")
        if self.local is None:
            raise RuntimeError("source='ddp': no all-reduce happened since the last step (every backward under no_sync?)")
        group = self._group()
        world = dist.get_world_size(group)
        if world < 2:
            raise RuntimeError("source='ddp' needs at least 2 replicas; use 'per_example' or 'accumulation'")
        local = self.local.to(self.params[0].device)
        dist.all_reduce(local, group=group)
        local = local / world
        grads = _grads(self.params)
        values = [local[0], grad_sq_norm(grads)]
        if self.preconditioner is not None and preconditioner is not None:
            values += [local[1], grad_sq_norm(grads, preconditioner)]
        return float(batch_size), float(batch_size * world), values

    def unmeasured_examples(self, batch_size):
        import torch.distributed as dist

        return (batch_size or 0) * dist.get_world_size(self._group())

    def reset(self, measuring_next: bool) -> None:
        self.local = None

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


#: source name -> class
SOURCE_CLASSES = {"per_example": PerExampleSource, "accumulation": AccumulationSource, "ddp": DDPSource}
