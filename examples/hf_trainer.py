"""Hugging Face Trainer + trainwise: noise scale every step, LR following the AdaScale rule.

    PYTHONPATH=src python examples/hf_trainer.py --out runs/hf --steps 20

Writes ``noise.jsonl`` (monitor), ``adapt.jsonl`` (controller recommendations) in ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_data import WindowDataset, char_windows, tiny_gpt2  # noqa: E402


def build_trainer(out: str, steps: int = 20, micro: int = 4, accumulation: int = 2, lr_rule: str = "adam",
                  base_batch_size: int | None = None, seed: int = 0, save_steps: int | None = None,
                  callback=None, model=None, length: int = 16, restore: bool = False):
    from transformers import Trainer, TrainingArguments

    from trainwise.integrations.hf import NoiseScaleCallback

    windows, vocab = char_windows(256, length, seed=seed)
    model = model if model is not None else tiny_gpt2(vocab, length, seed=seed)
    callback = callback or NoiseScaleCallback(log_dir=out, lr_rule=lr_rule, base_batch_size=base_batch_size,
                                              max_batch_size=256, update_interval=5, tokens_per_example=None)
    # the Trainer's own clipping (max_grad_norm=1.0, its default) stays on: the callback measures just before it
    args = TrainingArguments(
        output_dir=out, max_steps=steps, per_device_train_batch_size=micro, gradient_accumulation_steps=accumulation,
        learning_rate=1e-3, lr_scheduler_type="constant", weight_decay=0.0,
        train_sampling_strategy="sequential", report_to=[], use_cpu=True, seed=seed, logging_steps=5,
        save_strategy="steps" if save_steps else "no", save_steps=save_steps or 500, disable_tqdm=True,
        restore_callback_states_from_checkpoint=restore, dataloader_num_workers=0)
    return Trainer(model=model, args=args, train_dataset=WindowDataset(windows), callbacks=[callback]), callback


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/hf")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--accumulation", type=int, default=2)
    args = parser.parse_args(argv)
    trainer, callback = build_trainer(args.out, steps=args.steps, accumulation=args.accumulation, base_batch_size=4)
    trainer.train()
    logged = [entry["b_simple"] for entry in trainer.state.log_history if "b_simple" in entry]
    print(f"B_simple in log_history: {', '.join(f'{b:.1f}' for b in logged)}")
    print(f"B_simple = {callback.monitor.b_simple:.1f} examples after {callback.monitor.steps} steps; "
          f"LR factor {callback.controller.lr_factor():.3f}; log: {Path(args.out) / 'noise.jsonl'}")


if __name__ == "__main__":
    main()
