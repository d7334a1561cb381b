"""The branched critical-batch method of Merrill et al. 2025 ("Critical Batch Size Revisited", arXiv:2505.23971).

Instead of training to a target from scratch at every batch size, take checkpoints of **one** run at batch
``B₀`` and, from each, branch short continuations at batch sizes ``k·B₀`` (learning rate from a rule, optionally
tuned over a few factors), all for the same number of examples ``Δ``. The reference is the branch that keeps
``B₀``. The critical batch size at that checkpoint is the largest ``k·B₀`` whose loss after ``Δ`` examples is
within ``tolerance`` of the reference: beyond it, bigger batches waste data. Read over the checkpoints, it shows
how the critical batch grows during training (which motivates batch-size warm-up).
"""

from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable


from trainwise.sweep.runner import lr_for_rule
from trainwise.tasks.base import Task

__all__ = ["BranchedConfig", "run_branched"]

STATE_FILE = "branched_state.json"
RESULT_FILE = "branched.json"


@dataclass
class BranchedConfig:
    task: str
    base_batch: int
    base_lr: float
    checkpoint_steps: list[int]
    multipliers: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32])
    branch_examples: int = 8192
    tolerance: float = 0.01  #: allowed excess loss over the B₀ branch, nats (absolute)
    lr_rule: str = "sqrt"
    lr_factors: list[float] = field(default_factory=lambda: [1.0])
    optimizer: str | None = None
    seed: int = 0
    task_kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.checkpoint_steps = sorted(int(s) for s in self.checkpoint_steps)
        self.multipliers = sorted(int(k) for k in self.multipliers)
        if not self.checkpoint_steps or self.checkpoint_steps[0] < 0:
            raise ValueError(f"checkpoint_steps must be non-negative steps, got {self.checkpoint_steps!r}")
        if not self.multipliers or self.multipliers[0] != 1:
            raise ValueError(f"multipliers must include 1 (the reference branch), got {self.multipliers!r}")
        if self.base_batch < 1 or not self.base_lr > 0 or self.branch_examples < self.base_batch * max(self.multipliers):
            raise ValueError(
                f"need base_batch >= 1, base_lr > 0 and branch_examples >= the largest branch batch "
                f"({self.base_batch * max(self.multipliers)}); got {self.base_batch!r}, {self.base_lr!r}, {self.branch_examples!r}"
            )
        if not self.tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0, got {self.tolerance!r}")


def _train(task: Task, model, opt, batch_size: int, steps: int, seed: int) -> None:
    stream = task.batches(batch_size, seed=seed)
    for _ in range(steps):
        loss = task.loss_fn(model, next(stream)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def _write(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def run_branched(task: Task, config: BranchedConfig, out_dir: str | Path,
                 log: Callable[[str], None] | None = None) -> dict:
    """Run the base run and its branches (resumable per checkpoint); returns and writes ``branched.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE_FILE
    cfg = json.loads(json.dumps(asdict(config)))
    state = json.loads(state_path.read_text()) if state_path.exists() else {"config": cfg, "checkpoints": {}}
    if state.get("config") != cfg:
        raise ValueError(f"{str(state_path)!r} was written by a different branched configuration; use another --out")
    model = task.make_model(seed=config.seed)
    opt = task.make_optimizer(model, lr=config.base_lr, name=config.optimizer)
    done_step = 0
    for ckpt_step in config.checkpoint_steps:
        # the base run is deterministic: re-derive it chunk by chunk (seeded per chunk)
        _train(task, model, opt, config.base_batch, ckpt_step - done_step, seed=config.seed * 7919 + ckpt_step)
        done_step = ckpt_step
        if str(ckpt_step) in state["checkpoints"]:
            continue
        loss_at_ckpt = task.eval_loss(model)
        branches = []
        for k in config.multipliers:
            batch = k * config.base_batch
            steps = max(1, round(config.branch_examples / batch))
            best = None
            for factor in config.lr_factors:
                lr = lr_for_rule(config.lr_rule, batch, config.base_lr, config.base_batch) * factor
                branch_model = copy.deepcopy(model)
                branch_opt = task.make_optimizer(branch_model, lr=lr, name=config.optimizer)
                branch_opt.load_state_dict(opt.state_dict())
                for group in branch_opt.param_groups:
                    group["lr"] = lr
                _train(task, branch_model, branch_opt, batch, steps, seed=10_007 * (ckpt_step + 1) + batch)
                loss = task.eval_loss(branch_model)
                if math.isfinite(loss) and (best is None or loss < best["loss"]):
                    best = {"batch_size": batch, "lr": lr, "steps": steps, "loss": loss}
            branches.append(best or {"batch_size": batch, "lr": None, "steps": steps, "loss": None})
        reference = branches[0]["loss"]
        keeping_up = [b["batch_size"] for b in branches
                      if b["loss"] is not None and reference is not None and b["loss"] <= reference + config.tolerance]
        # the largest batch of an unbroken run of passing branches from B₀ upwards
        b_crit = config.base_batch
        for b in branches:
            if b["batch_size"] in keeping_up:
                b_crit = b["batch_size"]
            else:
                break
        entry = {"step": ckpt_step, "examples": ckpt_step * config.base_batch, "loss": loss_at_ckpt,
                 "branches": branches, "reference_loss": reference, "b_crit": b_crit,
                 "capped": b_crit == branches[-1]["batch_size"]}
        state["checkpoints"][str(ckpt_step)] = entry
        _write(state_path, state)
        if log:
            log(f"step {ckpt_step:<6d} loss {loss_at_ckpt:.4f}  largest batch keeping up: {b_crit}"
                + ("  (the largest tried: a lower bound)" if entry["capped"] else ""))
    result = {"kind": "branched", "config": cfg,
              "checkpoints": [state["checkpoints"][str(s)] for s in config.checkpoint_steps],
              "method": "Merrill et al. 2025 (arXiv:2505.23971): largest branch batch whose loss after "
              f"{config.branch_examples} examples is within {config.tolerance} nats of the B0={config.base_batch} branch"}
    _write(out / RESULT_FILE, result)
    return result
