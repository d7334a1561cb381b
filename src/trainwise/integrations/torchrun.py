r"""A plain-loop helper for one process or torchrun DDP: accumulation, noise scale, adaptive batch.

:class:`AdaptiveBatchLoop` runs one optimizer step per :meth:`~AdaptiveBatchLoop.step` call from
the controller's current plan: ``k`` micro-batches of ``b`` examples per replica (all but the last
under ``DDP.no_sync()``), each micro loss weighted ``b_j/B`` so the accumulated gradient is the
mean over the replica's batch. The :class:`~trainwise.noise.NoiseScaleMonitor` measures through

- ``"ddp"`` (several replicas): ``B_small`` = per-replica batch, ``B_big`` = global batch;
- ``"accumulation"`` (one process): ``B_small`` = micro-batch; when the plan has a single
  micro-batch, the loop splits it in two halves (same memory, one more launch) so every step is
  measured.

The LR multiplier of the controller (AdaScale gain, or its square root for Adam) is applied on top
of whatever the schedule set, for the optimizer step only, then undone, so LR schedulers see their
own values. Under DDP the step time is the slowest rank's, and rank 0's plan is broadcast after
each decision: all ranks always use the same batch.

Example::

    loop = AdaptiveBatchLoop(ddp_model, optimizer, controller, log_dir="runs/x")
    for _ in range(steps):
        out = loop.step(lambda b: next_batch(b), loss_fn)   # loss_fn(model, batch) -> loss
        scheduler.step()
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from trainwise.adapt.controller import BatchPlan, BatchSizeController
from trainwise.integrations.logging import Sinks
from trainwise.noise.monitor import NoiseScaleMonitor
# the LR helpers live with the LR rules; re-exported here for code that imported them from this module
from trainwise.optim.lr_scaling import scale_lr_for_next_step, scaled_lr

__all__ = ["AdaptiveBatchLoop", "micro_batch_sizes", "scale_lr_for_next_step", "scaled_lr"]


def micro_batch_sizes(plan: BatchPlan, split_single: bool) -> list[int]:
    """The per-replica micro-batch sizes of one step; one micro-batch is halved if ``split_single``."""
    if plan.accumulation_steps == 1 and split_single and plan.micro_batch_size >= 2:
        half = plan.micro_batch_size // 2
        return [plan.micro_batch_size - half, half]
    return [plan.micro_batch_size] * plan.accumulation_steps


def _is_ddp(model: nn.Module) -> bool:
    return isinstance(model, nn.parallel.DistributedDataParallel)


class AdaptiveBatchLoop:
    """One optimizer step at a time, at the batch the controller chose.

    Args:
        model: the model, or its ``DistributedDataParallel`` wrapper under torchrun.
        optimizer: the optimizer (its ``lr`` is the schedule's; the controller's factor goes on top).
        controller: a :class:`BatchSizeController` with ``world_size`` = number of replicas; None to
            only measure at a fixed ``batch_size`` (then pass ``micro_batch_size``/``accumulation_steps``).
        monitor: a :class:`NoiseScaleMonitor`; default ``ddp`` source under DDP, else ``accumulation``.
        log_dir: writes ``noise.jsonl`` (monitor) and ``adapt.jsonl`` (decisions) there (rank 0).
        tensorboard: also write scalars to TensorBoard (a directory, or True for ``log_dir/tb``).
        max_grad_norm: clip after measuring (the monitor needs the raw gradient).
        adapt_lr: apply the controller's LR factor.
        tokens_per_example: passed to the default monitor (report batch sizes in tokens).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        controller: BatchSizeController | None = None,
        *,
        monitor: NoiseScaleMonitor | None = None,
        micro_batch_size: int | None = None,
        accumulation_steps: int = 1,
        log_dir: str | Path | None = None,
        tensorboard: str | Path | bool | None = None,
        max_grad_norm: float | None = None,
        adapt_lr: bool = True,
        tokens_per_example: float | None = None,
        ema_steps: float = 20.0,
    ):
        self.model = model
        self.optimizer = optimizer
        self.ddp = _is_ddp(model)
        import torch.distributed as dist

        self.world_size = dist.get_world_size() if self.ddp else 1
        self.rank = dist.get_rank() if self.ddp else 0
        if controller is None:
            if micro_batch_size is None:
                raise ValueError("without a controller pass micro_batch_size (and accumulation_steps)")
            batch = micro_batch_size * accumulation_steps * self.world_size
            controller = BatchSizeController(batch, max_micro_batch_size=micro_batch_size, max_batch_size=batch,
                                             world_size=self.world_size, lr_rule="none",
                                             update_interval=1 << 30)
            controller.plan = BatchPlan(batch, micro_batch_size, accumulation_steps, self.world_size)
            adapt_lr = False
        if controller.world_size != self.world_size:
            raise ValueError(f"controller.world_size={controller.world_size} but the model runs on {self.world_size} replicas")
        self.controller = controller
        log_dir = Path(log_dir) if log_dir else None
        if monitor is None:
            source = "ddp" if self.ddp and self.world_size > 1 else "accumulation"
            monitor = NoiseScaleMonitor(model if source == "ddp" else (model.module if self.ddp else model),
                                        source=source, optimizer=optimizer, ema_steps=ema_steps,
                                        tokens_per_example=tokens_per_example,
                                        log_path=log_dir / "noise.jsonl" if log_dir else None,
                                        meta={"world_size": self.world_size, "integration": "torchrun"})
        self.monitor = monitor
        if log_dir is not None and self.rank == 0 and controller.log_path is None:
            controller.log_path = log_dir / "adapt.jsonl"
        if self.rank != 0:
            controller.log_path = None
        if tensorboard is True:
            tensorboard = (log_dir or Path("runs")) / "tb"
        self.sinks = Sinks.from_options(tensorboard=tensorboard, enabled=self.rank == 0)
        self.max_grad_norm = max_grad_norm
        self.adapt_lr = adapt_lr

    @property
    def plan(self) -> BatchPlan:
        return self.controller.plan

    def step(self, next_batch: Callable[[int], Any], loss_fn: Callable[[nn.Module, Any], torch.Tensor]) -> dict:
        """One optimizer step. ``next_batch(b)`` returns this replica's next ``b`` examples;
        ``loss_fn(model, batch)`` their loss (mean, or per-example losses that are averaged).

        Returns ``{"loss", "plan", "record" (monitor), "decision" (controller or None), "lr_factor", "seconds"}``.
        """
        start = time.perf_counter()
        plan = self.controller.plan
        sizes = micro_batch_sizes(plan, split_single=self.monitor.source == "accumulation")
        per_replica = sum(sizes)
        self.optimizer.zero_grad(set_to_none=True)
        if self.monitor.source == "ddp" and self.monitor.precondition:
            self.monitor.prepare_ddp_step()
        loss_sum = torch.zeros((), dtype=torch.float64)
        for j, size in enumerate(sizes):
            batch = next_batch(size)
            last = j == len(sizes) - 1
            sync = self.model.no_sync() if self.ddp and not last else contextlib.nullcontext()
            with sync:
                loss = loss_fn(self.model, batch)
                if loss.dim():
                    loss = loss.mean()
                (loss * (size / per_replica)).backward()
            if self.monitor.source == "accumulation":
                self.monitor.micro_step(size)
            loss_sum += loss.detach().double().cpu() * (size / per_replica)
        if self.ddp:
            import torch.distributed as dist

            dist.all_reduce(loss_sum)
            loss_sum /= self.world_size
        loss_value = float(loss_sum)
        record = self.monitor.step(batch_size=per_replica if self.monitor.source == "ddp" else None, loss=loss_value)
        if self.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        decision = self.controller.update(self.monitor)  # may change the plan of the *next* step
        # this step's LR factor: the rule at this step's batch and the B_simple measured up to now
        factor = self.controller.lr_factor(batch_size=plan.batch_size) if self.adapt_lr else 1.0
        with scaled_lr(self.optimizer, factor):
            self.optimizer.step()
        seconds = time.perf_counter() - start
        if self.ddp:
            import torch.distributed as dist

            # the slowest replica sets the pace; every rank feeds the same time to its controller
            slowest = torch.tensor([seconds], dtype=torch.float64)
            dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
            seconds = float(slowest)
            self._agree_on_plan()
        self.controller.observe_step_time(seconds, plan)
        self.sinks.write(record)
        self.sinks.write(decision)
        return {"loss": loss_value, "plan": plan, "record": record, "decision": decision,
                "lr_factor": factor, "seconds": seconds}

    def _agree_on_plan(self) -> None:
        """Broadcast rank 0's plan; a disagreement (it should never happen) is an error."""
        import torch.distributed as dist

        mine = self.controller.plan
        numbers = torch.tensor([mine.batch_size, mine.micro_batch_size, mine.accumulation_steps], dtype=torch.long)
        dist.broadcast(numbers, src=0)
        theirs = BatchPlan(int(numbers[0]), int(numbers[1]), int(numbers[2]), self.world_size)
        if theirs != mine:
            raise RuntimeError(f"rank {self.rank} chose {mine} but rank 0 chose {theirs}: the controllers diverged")

    def state_dict(self) -> dict:
        return {"monitor": self.monitor.state_dict(), "controller": self.controller.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.monitor.load_state_dict(state["monitor"])
        self.controller.load_state_dict(state["controller"])

    def close(self) -> None:
        self.monitor.close()
        self.sinks.close()
