r"""Hugging Face ``transformers`` Trainer: measure the noise scale, log it, scale the LR (extra ``hf``).

:class:`NoiseScaleCallback` translates Trainer hooks into :class:`~trainwise.noise.NoiseScaleMonitor`
calls, in one process:

- ``gradient_accumulation_steps > 1``: the ``accumulation`` source. ``on_substep_end`` follows each
  micro-batch's backward except the last, ``on_pre_optimizer_step`` the last one; the Trainer
  weights micro losses by their share of the batch (``num_items_in_batch``), as the monitor expects.
- ``gradient_accumulation_steps == 1``: the ``per_example`` source (exact per-example gradient norms).

What the Trainer allows and what it does not:

- The Trainer clips gradients *before* ``on_pre_optimizer_step``; the monitor needs the raw
  gradient. Set ``TrainingArguments(max_grad_norm=0)`` and pass ``max_grad_norm=`` to the callback,
  which clips after measuring (the callback refuses ``args.max_grad_norm > 0``).
- The batch size cannot change during ``Trainer.train()``: the Trainer fixes the dataloader, the
  epoch length and the schedule length from ``gradient_accumulation_steps`` when training starts,
  and reads it inside its loop. The controller therefore runs in *recommend* mode: every decision
  is logged (``adapt.jsonl``, ``"applied": false``) with the batch it recommends; apply it by
  resuming from a checkpoint with a new ``gradient_accumulation_steps``.
- The learning rate can follow the rule: with ``lr_rule="adam"``/``"sgd"`` and ``base_batch_size``
  (the batch the schedule was tuned for) the callback multiplies every group's LR by the
  controller's factor for the optimizer step only, then restores it, so the Trainer's scheduler is
  untouched.

State survives checkpoints: the callback is an ``ExportableState``; resume with
``TrainingArguments(restore_callback_states_from_checkpoint=True)`` (the Trainer then replaces the
callback by a new one built from its saved arguments and state).
"""

from __future__ import annotations

import math
from pathlib import Path

from torch import nn

from trainwise._optional import require
from trainwise.adapt.controller import BatchPlan, BatchSizeController
from trainwise.integrations.logging import JsonlSink, Sinks
from trainwise.noise.monitor import NoiseScaleMonitor
from trainwise.optim.lr_scaling import scale_lr_for_next_step

_transformers = require("transformers", extra="hf", purpose="the Hugging Face Trainer callback")
from transformers import TrainerCallback  # noqa: E402

try:  # transformers >= 4.41
    from transformers.trainer_callback import ExportableState
except ImportError:  # pragma: no cover
    ExportableState = object  # type: ignore[misc,assignment]

__all__ = ["NoiseScaleCallback"]


class NoiseScaleCallback(TrainerCallback, ExportableState):
    """Measure ``B_simple`` every optimizer step of a ``transformers.Trainer``.

    Args:
        log_dir: writes ``noise.jsonl`` (monitor) and ``adapt.jsonl`` (controller) there; default
            ``args.output_dir``.
        tensorboard: also write scalars to TensorBoard (a directory, or True for ``log_dir/tb``).
        ema_steps: time constant of the monitor's moving averages, in steps of the initial batch.
        tokens_per_example: report batch sizes in tokens (sequence length).
        source: ``"auto"`` (accumulation if ``gradient_accumulation_steps > 1``, else per-example),
            ``"accumulation"`` or ``"per_example"``.
        lr_rule: ``"none"`` (measure only), ``"adam"`` (×√gain) or ``"sgd"`` (×gain).
        base_batch_size: the global batch the LR schedule was tuned for (default: the batch used).
        max_batch_size: the largest batch the controller may recommend.
        noise_fraction, update_interval: passed to the controller.
        max_grad_norm: clip after measuring (set the Trainer's ``max_grad_norm=0``).
        layers: per-example source only: ``"all"`` or ``"norm"`` (LayerNorm/RMSNorm parameters, a
            cheap proxy; needed for models such as GPT-2 whose position embedding is broadcast
            over the batch, which per-example norms cannot split).
    """

    def __init__(
        self,
        log_dir: str | None = None,
        tensorboard: str | bool | None = None,
        ema_steps: float = 20.0,
        tokens_per_example: float | None = None,
        source: str = "auto",
        lr_rule: str = "none",
        base_batch_size: int | None = None,
        max_batch_size: int | None = None,
        noise_fraction: float = 1.0,
        update_interval: int = 10,
        max_grad_norm: float | None = None,
        layers: str = "all",
    ):
        if source not in ("auto", "accumulation", "per_example"):
            raise ValueError(f"source must be 'auto', 'accumulation' or 'per_example', got {source!r}")
        self.log_dir = log_dir
        self.tensorboard = tensorboard
        self.ema_steps = ema_steps
        self.tokens_per_example = tokens_per_example
        self.source = source
        self.lr_rule = lr_rule
        self.base_batch_size = base_batch_size
        self.max_batch_size = max_batch_size
        self.noise_fraction = noise_fraction
        self.update_interval = update_interval
        self.max_grad_norm = max_grad_norm
        self.layers = layers
        self.saved_state: dict | None = None
        self.monitor: NoiseScaleMonitor | None = None
        self.controller: BatchSizeController | None = None
        self.records: list[dict] = []
        self._sinks = Sinks()

    # ------------------------------------------------------------------ setup
    def on_train_begin(self, args, state, control, model: nn.Module | None = None, optimizer=None, **kwargs):
        if args.max_grad_norm and args.max_grad_norm > 0:
            raise ValueError(
                f"TrainingArguments(max_grad_norm={args.max_grad_norm}) clips the gradient before the callback can "
                "measure it; set max_grad_norm=0 and pass NoiseScaleCallback(max_grad_norm=...) to clip after measuring")
        if args.world_size > 1:
            raise NotImplementedError(
                f"NoiseScaleCallback measures in one process; this run has world_size={args.world_size}. "
                "Use trainwise.integrations.torchrun.AdaptiveBatchLoop for DDP")
        accumulation = int(args.gradient_accumulation_steps)
        micro = int(args.per_device_train_batch_size)
        source = self.source if self.source != "auto" else ("accumulation" if accumulation > 1 else "per_example")
        if source == "accumulation" and accumulation < 2:
            raise ValueError("source='accumulation' needs gradient_accumulation_steps >= 2, got 1")
        log_dir = Path(self.log_dir or args.output_dir)
        self.monitor = NoiseScaleMonitor(
            model, source=source, optimizer=optimizer, ema_steps=self.ema_steps,
            tokens_per_example=self.tokens_per_example, keep_history=False,
            log_path=log_dir / "noise.jsonl", layers=self.layers,
            meta={"integration": "hf", "gradient_accumulation_steps": accumulation, "micro_batch_size": micro})
        batch = micro * accumulation
        self.controller = BatchSizeController(
            self.base_batch_size or batch, max_micro_batch_size=micro,
            max_batch_size=max(self.max_batch_size or batch, batch), min_batch_size=batch,
            lr_rule=self.lr_rule, noise_fraction=self.noise_fraction, update_interval=self.update_interval)
        self._decision_log = JsonlSink(log_dir / "adapt.jsonl")  # written after marking "applied": false
        self._plan = BatchPlan(batch, micro, accumulation, 1)
        self.controller.plan = self._plan
        tensorboard = log_dir / "tb" if self.tensorboard is True else self.tensorboard
        self._sinks = Sinks.from_options(tensorboard=tensorboard)
        if self.saved_state is not None:
            self.load_state_dict(self.saved_state)
        self._micro_batch = micro

    # ------------------------------------------------------------------ hooks
    def on_substep_end(self, args, state, control, **kwargs):
        if self.monitor is not None and self.monitor.source == "accumulation":
            self.monitor.micro_step(self._micro_batch)

    def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        monitor, controller = self.monitor, self.controller
        if monitor is None or controller is None:
            return
        if monitor.source == "accumulation":
            monitor.micro_step(self._micro_batch)
        lr = float(optimizer.param_groups[0]["lr"]) if optimizer is not None else None
        record = monitor.step(lr=lr)
        if record is not None:
            self.records.append(record)
            self._sinks.write(record)
        if self.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), self.max_grad_norm)
        decision = controller.update(monitor, step=state.global_step + 1)
        if decision is not None:
            decision["applied"] = False
            decision["recommended_batch_size"] = decision["batch_size"]
            decision["recommended_accumulation_steps"] = decision["accumulation_steps"]
            decision["batch_size"] = self._plan.batch_size
            controller.plan = self._plan  # the Trainer keeps its batch
            decision["lr_factor"] = controller.lr_factor()
            self._decision_log.write(decision)
            self._sinks.write(decision)
        if optimizer is not None and self.lr_rule != "none":
            scale_lr_for_next_step(optimizer, controller.lr_factor())

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None and self.monitor is not None and not math.isnan(self.monitor.b_simple):
            logs["b_simple"] = self.monitor.b_simple
            if self.controller is not None and self.lr_rule != "none":
                logs["lr_factor"] = self.controller.lr_factor()

    def on_train_end(self, args, state, control, **kwargs):
        if self.monitor is not None:
            self.monitor.close()
        self._sinks.close()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        if self.monitor is None or self.controller is None:
            return dict(self.saved_state or {})
        return {"monitor": self.monitor.state_dict(), "controller": self.controller.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.monitor is None or self.controller is None:
            self.saved_state = state  # applied in on_train_begin
            return
        self.monitor.load_state_dict(state["monitor"])
        self.controller.load_state_dict(state["controller"])
        self.controller.plan = self._plan

    def state(self) -> dict:
        """``ExportableState``: constructor arguments and the monitor/controller state (JSON)."""
        return {
            "args": {name: getattr(self, name) for name in (
                "log_dir", "tensorboard", "ema_steps", "tokens_per_example", "source", "lr_rule",
                "base_batch_size", "max_batch_size", "noise_fraction", "update_interval", "max_grad_norm",
                "layers")},
            "attributes": {"saved_state": self.state_dict()},
        }
