r"""Hugging Face ``transformers`` Trainer: measure the noise scale, log it, scale the LR (extra ``hf``).

:class:`NoiseScaleCallback` translates Trainer hooks into :class:`~trainwise.noise.NoiseScaleMonitor`
calls, in one process or several:

- ``gradient_accumulation_steps > 1``: the ``accumulation`` source. ``on_substep_end`` follows each
  micro-batch's backward except the last, the clipping call the last one; the Trainer
  weights micro losses by their share of the batch (``num_items_in_batch``), as the monitor expects.
- ``gradient_accumulation_steps == 1``: the ``per_example`` source (exact per-example gradient norms).

How it hooks into the Trainer as users configure it:

- **Clipping stays on.** The Trainer clips (``max_grad_norm=1.0`` by default) through
  ``trainer.accelerator.clip_grad_norm_`` before any callback event; the callback wraps that method on the
  Trainer's accelerator so the monitor measures the raw gradient just before it is clipped (with
  ``max_grad_norm=0`` the Trainer calls the same method with ``inf`` to read the norm, and the callback measures
  there too). The Trainer is found when it calls ``on_init_end`` (or pass it: ``callback.attach(trainer)``).
- **Logged where loggers look.** ``b_simple``, ``noise_grad_sq_norm``, ``noise_trace_sigma`` (and ``lr_factor``
  with an LR rule) are added in ``on_log``; the callback moves itself to the front of the Trainer's callbacks, so
  the ``report_to`` integrations (W&B, TensorBoard, ...) that run after it see them, and it adds them to the entry
  the Trainer has just appended to ``state.log_history``.
- **Several processes** (``torchrun``/``accelerate launch``): under DDP the ``ddp`` source (``B_small`` = the
  per-device batch × accumulation, read in the DDP communication hook, wrapping any hook already registered);
  under FSDP2 the ``per_example``/``accumulation`` sources add the ranks' sums (``docs/sharded.md``). Logs and
  decisions are written by the main process only.

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
import sys
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
        max_grad_norm: clip after measuring, for a Trainer with ``max_grad_norm=0`` (the Trainer's own clipping,
            its default, works as it is).
        layers: per-example source only: ``"all"`` or ``"norm"`` (norm-layer parameters, a cheap proxy).
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
        if source not in ("auto", "accumulation", "per_example", "ddp"):
            raise ValueError(f"source must be 'auto', 'accumulation', 'per_example' or 'ddp', got {source!r}")
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
        self._records: list = []  # the monitor's records, read back from the device when first looked at
        self._sinks = Sinks()
        self._trainer = None
        self._restore_clip = None
        self._measured = False
        self._main_process = True

    # ------------------------------------------------------------------ setup
    def attach(self, trainer) -> "NoiseScaleCallback":
        """Tie the callback to ``trainer`` (done by itself in ``on_init_end`` when the Trainer calls it)."""
        self._trainer = trainer
        callbacks = trainer.callback_handler.callbacks
        if self in callbacks and callbacks[0] is not self:  # first, so report_to integrations see what on_log adds
            callbacks.remove(self)
            callbacks.insert(0, self)
        return self

    def _find_trainer(self):
        """The Trainer whose event is being delivered: the nearest caller frame whose ``self`` is a Trainer."""
        frame = sys._getframe(1)
        for _ in range(12):
            if frame is None:
                break
            owner = frame.f_locals.get("self")
            if isinstance(owner, _transformers.Trainer):
                return owner
            frame = frame.f_back
        return None

    @property
    def records(self) -> list[dict]:
        """The measured steps' records as plain dicts (reading them back from the device, one sync, if pending)."""
        return [dict(record) for record in self._records]

    def on_init_end(self, args, state, control, **kwargs):
        if self._trainer is None:
            trainer = self._find_trainer()
            if trainer is not None:
                self.attach(trainer)

    def _wrap_clipping(self, trainer) -> None:
        """Measure inside ``accelerator.clip_grad_norm_``, before the Trainer clips (or reads the norm with ``inf``)."""
        accelerator = trainer.accelerator
        original = accelerator.clip_grad_norm_
        if getattr(original, "_trainwise_wrapped", False):
            return

        def clip_grad_norm_(parameters, max_norm, *args, **kwargs):
            self._measure_step(accelerator)
            return original(parameters, max_norm, *args, **kwargs)

        clip_grad_norm_._trainwise_wrapped = True
        accelerator.clip_grad_norm_ = clip_grad_norm_

        def restore():
            if accelerator.__dict__.get("clip_grad_norm_") is clip_grad_norm_:
                del accelerator.clip_grad_norm_

        self._restore_clip = restore

    def on_train_begin(self, args, state, control, model: nn.Module | None = None, optimizer=None, **kwargs):
        trainer = self._trainer or self._find_trainer()
        if trainer is not None and self._trainer is None:
            self.attach(trainer)
        if trainer is None and args.max_grad_norm and args.max_grad_norm > 0:
            raise ValueError(
                f"TrainingArguments(max_grad_norm={args.max_grad_norm}) clips the gradient before the callback can "
                "measure it and the callback could not find the Trainer to measure first: call "
                "callback.attach(trainer), or set max_grad_norm=0 and pass NoiseScaleCallback(max_grad_norm=...)")
        accumulation = int(args.gradient_accumulation_steps)
        micro = int(args.per_device_train_batch_size)
        world = int(args.world_size)
        wrapped = getattr(trainer, "model_wrapped", None) if trainer is not None else None
        ddp = isinstance(wrapped, nn.parallel.DistributedDataParallel)
        if self.source != "auto":
            source = self.source
        elif world > 1 and ddp:
            source = "ddp"
        else:
            source = "accumulation" if accumulation > 1 else "per_example"
        if source == "accumulation" and accumulation < 2:
            raise ValueError("source='accumulation' needs gradient_accumulation_steps >= 2, got 1")
        if world > 1 and ddp and source != "ddp":
            raise ValueError(f"source={source!r} under DDP: the ranks' micro-batch gradients are not synchronised "
                             "until the last one; use source='ddp' (or 'auto')")
        self._main_process = bool(state.is_world_process_zero)
        log_dir = Path(self.log_dir or args.output_dir)
        self.monitor = NoiseScaleMonitor(
            wrapped if source == "ddp" else model, source=source, optimizer=optimizer, ema_steps=self.ema_steps,
            tokens_per_example=self.tokens_per_example, keep_history=False,
            log_path=log_dir / "noise.jsonl", layers=self.layers,
            meta={"integration": "hf", "gradient_accumulation_steps": accumulation, "micro_batch_size": micro,
                  "world_size": world})
        per_step = micro * accumulation  # per device; the global batch is this × world
        batch = per_step * world
        self._per_device_batch = per_step
        self.controller = BatchSizeController(
            self.base_batch_size or batch, max_micro_batch_size=micro,
            max_batch_size=max(self.max_batch_size or batch, batch), min_batch_size=batch,
            lr_rule=self.lr_rule, noise_fraction=self.noise_fraction, update_interval=self.update_interval)
        self._decision_log = JsonlSink(log_dir / "adapt.jsonl") if self._main_process else None
        self._plan = BatchPlan(batch, micro, accumulation, world)
        self.controller.plan = self._plan
        tensorboard = log_dir / "tb" if self.tensorboard is True else self.tensorboard
        self._sinks = Sinks.from_options(tensorboard=tensorboard if self._main_process else None)
        if self.saved_state is not None:
            self.load_state_dict(self.saved_state)
        self._micro_batch = micro
        self._measured = False
        if trainer is not None:
            self._wrap_clipping(trainer)

    # ------------------------------------------------------------------ hooks
    def on_substep_end(self, args, state, control, **kwargs):
        if self.monitor is not None and self.monitor.source == "accumulation":
            self.monitor.micro_step(self._micro_batch)

    def _measure_step(self, accelerator=None) -> None:
        """Measure the step's raw gradient, once per optimizer step (before the Trainer's clipping)."""
        monitor = self.monitor
        if monitor is None or self._measured:
            return
        self._measured = True
        if monitor.source == "accumulation":
            monitor.micro_step(self._micro_batch)
        scaler = getattr(accelerator, "scaler", None)
        loss_scale = float(scaler.get_scale()) if scaler is not None and scaler.is_enabled() else None
        optimizer = self.monitor.optimizer
        lr = float(optimizer.param_groups[0]["lr"]) if optimizer is not None else None
        batch_size = self._per_device_batch if monitor.source == "ddp" else None
        record = monitor.step(batch_size=batch_size, lr=lr, loss_scale=loss_scale)
        if record is not None:
            self._records.append(record)
            if self._main_process:
                self._sinks.write(record)

    def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        monitor, controller = self.monitor, self.controller
        if monitor is None or controller is None:
            return
        if not self._measured:  # the Trainer took a path that does not call accelerator.clip_grad_norm_
            if args.max_grad_norm and args.max_grad_norm > 0:
                raise RuntimeError("NoiseScaleCallback: the Trainer clipped without accelerator.clip_grad_norm_ "
                                   "(DeepSpeed, SageMaker MP or mixed-mesh gradients); set max_grad_norm=0 and pass "
                                   "NoiseScaleCallback(max_grad_norm=...)")
            self._measure_step()
        self._measured = False
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
            if self._decision_log is not None:
                self._decision_log.write(decision)
            if self._main_process:
                self._sinks.write(decision)
        if optimizer is not None and self.lr_rule != "none":
            scale_lr_for_next_step(optimizer, controller.lr_factor())

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or self.monitor is None or math.isnan(self.monitor.b_simple):
            return
        added = {"b_simple": self.monitor.b_simple, "noise_grad_sq_norm": self.monitor.grad_sq_norm,
                 "noise_trace_sigma": self.monitor.trace_sigma}
        if self.controller is not None and self.lr_rule != "none":
            added["lr_factor"] = self.controller.lr_factor()
        logs.update(added)  # report_to integrations after this callback read this dict
        history = state.log_history
        if history and history[-1].get("step") == state.global_step and all(k in history[-1] for k in logs
                                                                                if k not in added):
            history[-1].update(added)  # the Trainer copied logs into log_history before on_log

    def on_train_end(self, args, state, control, **kwargs):
        if self._restore_clip is not None:
            self._restore_clip()
            self._restore_clip = None
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
