r"""Lightning: measure the noise scale and grow the batch through gradient accumulation (extra ``lightning``).

:class:`AdaptiveBatchCallback` translates Lightning hooks into core calls (automatic optimization):

- ``on_after_backward`` → :meth:`NoiseScaleMonitor.micro_step` (accumulation source; Lightning
  divides each micro loss by ``accumulate_grad_batches``, the ``b_j/B`` weight the monitor expects),
  or nothing (per-example source, when ``accumulate_grad_batches == 1`` and no controller).
- ``on_before_optimizer_step`` (after the last backward, before Lightning clips) → ``monitor.step``,
  ``controller.update``, and the controller's LR factor for this optimizer step only.
- ``on_train_batch_end`` → a grow/shrink decision is applied by setting
  ``trainer.accumulate_grad_batches`` at the first batch boundary where the count of batches in
  the epoch is a multiple of the new value (Lightning decides "step now" by that modulus), so every
  step has exactly ``k`` micro-batches. The micro-batch (the dataloader's batch) never changes, so
  memory stays flat.

Several processes (measure and recommend; the batch changes only in one process):

- ``strategy="ddp"``: the ``ddp`` source on Lightning's DDP wrapper (per-replica batch before DDP's all-reduce,
  global batch after it); every rank gets the same records, rank 0 writes the log.
- FSDP2 through ``ModelParallelStrategy`` (``fully_shard`` in ``configure_model``): ``per_example`` or
  ``accumulation`` on the sharded module, records of the global batch (``docs/sharded.md``).
- ``strategy="fsdp"`` is FSDP1 (flat parameters; Lightning allows it on CUDA only), which the noise sources
  cannot read: refused at ``on_fit_start`` with a message pointing to ``ModelParallelStrategy``.

Metrics: ``b_simple``, ``noise_grad_sq_norm``, ``noise_trace_sigma`` go through ``pl_module.log`` (every
logger gets them) on the steps where Lightning writes its logs (``log_every_n_steps``), so the monitor's
numbers are read back from the device then and not on every step.

State: ``state_dict``/``load_state_dict`` (Lightning stores it in the checkpoint).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from trainwise._optional import require
from trainwise.adapt.controller import BatchPlan, BatchSizeController
from trainwise.integrations.logging import Sinks
from trainwise.noise._sharding import ShardingUnsupported
from trainwise.noise.monitor import NoiseScaleMonitor
from trainwise.optim.lr_scaling import scale_lr_for_next_step

require("lightning", extra="lightning", purpose="the Lightning callback")
from lightning.pytorch.callbacks import Callback  # noqa: E402

__all__ = ["AdaptiveBatchCallback"]


def _first_dim(batch: Any) -> int:
    import torch

    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, dict):
        batch = list(batch.values())
    if isinstance(batch, (list, tuple)) and batch:
        return _first_dim(batch[0])
    raise ValueError(f"cannot read the batch size of a {type(batch).__name__}; pass batch_size_fn=")


class _ListSink:
    """Keeps the records the monitor read back (``callback.records``), on every rank."""

    def __init__(self, records: list):
        self.records = records

    def write(self, record: dict) -> None:
        if record.get("kind") == "step":
            self.records.append(record)

    def close(self) -> None:
        pass


class AdaptiveBatchCallback(Callback):
    """Noise-scale monitor and (optional) batch-size controller for a Lightning ``Trainer``.

    Args:
        controller: a :class:`BatchSizeController` whose ``max_micro_batch_size`` is the
            dataloader's batch size; None to measure only. Needs ``accumulate_grad_batches >= 2``
            at the start (the accumulation source then measures every step).
        log_dir: ``noise.jsonl`` and ``adapt.jsonl`` go there (default: ``trainer.default_root_dir``).
        tensorboard: also write scalars to TensorBoard (a directory, or True for ``log_dir/tb``).
        ema_steps, tokens_per_example: passed to the monitor.
        batch_size_fn: ``batch -> number of examples`` (default: first dimension of the first tensor).
    """

    def __init__(self, controller: BatchSizeController | None = None, *, log_dir: str | Path | None = None,
                 tensorboard: str | Path | bool | None = None, ema_steps: float = 20.0,
                 tokens_per_example: float | None = None, batch_size_fn=None):
        self.controller = controller
        self.log_dir = log_dir
        self.tensorboard = tensorboard
        self.ema_steps = ema_steps
        self.tokens_per_example = tokens_per_example
        self.batch_size_fn = batch_size_fn or _first_dim
        self.monitor: NoiseScaleMonitor | None = None
        self.records: list[dict] = []
        self.applied: list[tuple[int, int]] = []  # (optimizer step, accumulate_grad_batches) when a change took effect
        self._saved_state: dict | None = None
        self._sinks = Sinks()
        self._micro: int | None = None
        self._pending: int | None = None

    def on_fit_start(self, trainer, pl_module) -> None:
        from torch.nn.parallel import DistributedDataParallel

        accumulation = int(trainer.accumulate_grad_batches)
        wrapped = trainer.strategy.model
        ddp = isinstance(wrapped, DistributedDataParallel)
        if trainer.world_size > 1 and self.controller is not None:
            raise NotImplementedError(f"AdaptiveBatchCallback changes the batch in one process only (world_size="
                                      f"{trainer.world_size}); pass controller=None to measure and recommend")
        if type(wrapped).__name__ == "FullyShardedDataParallel":
            raise ShardingUnsupported(
                "trainwise noise scale: Lightning's strategy='fsdp' wraps the model in FSDP1 (flat parameters), "
                "which is not supported; use lightning's ModelParallelStrategy with fully_shard in "
                "configure_model (FSDP2), or strategy='ddp' (see docs/sharded.md)")
        if self.controller is not None and accumulation < 2:
            raise ValueError("AdaptiveBatchCallback with a controller needs Trainer(accumulate_grad_batches >= 2) "
                             f"so every step is measured; got {accumulation}")
        source = "ddp" if ddp and trainer.world_size > 1 else "accumulation" if accumulation >= 2 else "per_example"
        log_dir = Path(self.log_dir or trainer.default_root_dir)
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        tensorboard = log_dir / "tb" if self.tensorboard is True else self.tensorboard
        # the monitor writes its records to the JSONL log and TensorBoard when it reads them back (rank 0)
        sinks = Sinks.from_options(jsonl=log_dir / "noise.jsonl", tensorboard=tensorboard,
                                   enabled=trainer.is_global_zero)
        self._records_sink = _ListSink(self.records)
        sinks.sinks.append(self._records_sink)
        self.monitor = NoiseScaleMonitor(wrapped if source == "ddp" else pl_module, source=source, optimizer=optimizer,
                                         ema_steps=self.ema_steps, tokens_per_example=self.tokens_per_example,
                                         keep_history=False, sink=sinks,
                                         meta={"integration": "lightning", "accumulate_grad_batches": accumulation,
                                               "world_size": trainer.world_size})
        if self.controller is not None and self.controller.log_path is None:
            self.controller.log_path = log_dir / "adapt.jsonl"
        self._sinks = Sinks.from_options(tensorboard=tensorboard) if self.controller is not None else Sinks()
        if self._saved_state is not None:
            self._load(self._saved_state)
            self._saved_state = None
            if self.controller is not None:
                trainer.accumulate_grad_batches = self.controller.accumulation_steps

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        size = int(self.batch_size_fn(batch))
        if self._micro is None and self.controller is not None:
            if size > self.controller.max_micro_batch_size:
                raise ValueError(f"the dataloader's batch ({size}) exceeds controller.max_micro_batch_size "
                                 f"({self.controller.max_micro_batch_size})")
            k = int(trainer.accumulate_grad_batches)
            if self.controller.steps == 0:  # a fresh controller starts from what the Trainer does
                self.controller.plan = BatchPlan(size * k, size, k, 1)
        self._micro = size

    def on_after_backward(self, trainer, pl_module) -> None:
        if self.monitor is not None and self.monitor.source == "accumulation":
            self.monitor.micro_step(self._micro)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        monitor = self.monitor
        if monitor is None:
            return
        batch_size = self._micro * int(trainer.accumulate_grad_batches) if monitor.source == "ddp" else None
        monitor.step(batch_size=batch_size, lr=float(optimizer.param_groups[0]["lr"]))
        if self.controller is None:
            return
        decision = self.controller.update(monitor, step=trainer.global_step + 1)
        if decision is not None:
            self._sinks.write(decision)
            if decision["action"] != "hold":
                self._pending = decision["accumulation_steps"]
        # until a change is applied at a batch boundary, this step ran at the Trainer's current k
        actual = self._micro * int(trainer.accumulate_grad_batches)
        scale_lr_for_next_step(optimizer, self.controller.lr_factor(batch_size=actual))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        monitor = self.monitor
        connector = getattr(trainer, "_logger_connector", None)
        if monitor is not None and monitor.steps and getattr(connector, "should_update_logs", True):
            b_simple = monitor.b_simple  # reads the pending steps back: only on the steps Lightning logs
            if not math.isnan(b_simple):
                pl_module.log_dict({"b_simple": b_simple, "noise_grad_sq_norm": monitor.grad_sq_norm,
                                    "noise_trace_sigma": monitor.trace_sigma}, on_step=True, on_epoch=False)
        if self._pending is None:
            return
        done = trainer.fit_loop.epoch_loop.batch_progress.current.ready
        if done % self._pending == 0:
            trainer.accumulate_grad_batches = self._pending
            self.applied.append((trainer.global_step, self._pending))
            self._pending = None

    def on_train_end(self, trainer, pl_module) -> None:
        if self.monitor is not None:
            self.monitor.close()
            self.monitor.sink.close()
        self._sinks.close()

    def state_dict(self) -> dict:
        if self.monitor is None:
            return dict(self._saved_state or {})
        return {"monitor": self.monitor.state_dict(),
                "controller": self.controller.state_dict() if self.controller is not None else None,
                "pending": self._pending}

    def _load(self, state: dict) -> None:
        self.monitor.load_state_dict(state["monitor"])
        if self.controller is not None and state.get("controller") is not None:
            self.controller.load_state_dict(state["controller"])
        self._pending = state.get("pending")

    def load_state_dict(self, state_dict: dict) -> None:
        if self.monitor is None:
            self._saved_state = state_dict  # applied in on_fit_start
        else:
            self._load(state_dict)

    @property
    def b_simple(self) -> float:
        return self.monitor.b_simple if self.monitor is not None else math.nan
