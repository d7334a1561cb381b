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
from pathlib import Path
from typing import Callable

from trainwise._io import strict, write_json
from trainwise.experiments.loop import train
from trainwise.results import BranchedResult
from trainwise.sweep.config import BranchedConfig, lr_for_rule
from trainwise.tasks.base import Task

__all__ = ["BranchedConfig", "run_branched"]

STATE_FILE = "branched_state.json"
RESULT_FILE = "branched.json"


def _train(task: Task, model, opt, batch_size: int, steps: int, seed: int) -> None:
    train(model, opt, task.batches(batch_size, seed=seed), steps, task.loss_fn)


def run_branched(task: Task, config: BranchedConfig, out_dir: str | Path,
                 log: Callable[[str], None] | None = None) -> BranchedResult:
    """Run the base run and its branches (resumable per checkpoint); returns and writes ``branched.json``
    (:class:`trainwise.results.BranchedResult`, readable as a dict; strict JSON: a diverged branch's loss is ``null``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE_FILE
    cfg = strict(config.to_dict())
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
        write_json(state_path, state)
        if log:
            log(f"step {ckpt_step:<6d} loss {loss_at_ckpt:.4f}  largest batch keeping up: {b_crit}"
                + ("  (the largest tried: a lower bound)" if entry["capped"] else ""))
    result = BranchedResult(
        config=cfg, checkpoints=[state["checkpoints"][str(s)] for s in config.checkpoint_steps],
        method="Merrill et al. 2025 (arXiv:2505.23971): largest branch batch whose loss after "
        f"{config.branch_examples} examples is within {config.tolerance} nats of the B0={config.base_batch} branch")
    write_json(out / RESULT_FILE, result)
    return result
