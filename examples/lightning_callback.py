"""Lightning + trainwise: the batch grows through gradient accumulation as the noise scale grows.

    PYTHONPATH=src python examples/lightning_callback.py --out runs/lightning --steps 30
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_data import WindowDataset, char_windows, tiny_gpt2  # noqa: E402


def make_module(model, lr: float = 1e-3):
    import lightning.pytorch as pl

    class CausalLM(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = model

        def training_step(self, batch, batch_idx):
            return self.model(input_ids=batch["input_ids"], labels=batch["labels"]).loss

        def configure_optimizers(self):
            return torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=0.0)

    return CausalLM()


def build(out: str, steps: int = 30, micro: int = 4, accumulation: int = 2, controller=None, model=None,
          length: int = 16, seed: int = 0, measure_only: bool = False):
    import lightning.pytorch as pl

    from trainwise.adapt import BatchSizeController
    from trainwise.integrations.lightning import AdaptiveBatchCallback

    windows, vocab = char_windows(256, length, seed=seed)
    model = model if model is not None else tiny_gpt2(vocab, length, seed=seed)
    if controller is None and not measure_only:
        controller = BatchSizeController(micro * accumulation, max_micro_batch_size=micro, max_batch_size=64,
                                         lr_rule="adam", noise_fraction=4.0, update_interval=5)
    callback = AdaptiveBatchCallback(controller, log_dir=out)
    loader = torch.utils.data.DataLoader(WindowDataset(windows), batch_size=micro, shuffle=False)
    trainer = pl.Trainer(max_steps=steps, accumulate_grad_batches=accumulation, accelerator="cpu", devices=1,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=out, num_sanity_val_steps=0)
    return trainer, make_module(model), loader, callback


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/lightning")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args(argv)
    trainer, module, loader, callback = build(args.out, steps=args.steps)
    trainer.callbacks.append(callback)
    trainer.fit(module, loader)
    print(f"B_simple = {callback.b_simple:.1f}; batch now {callback.controller.batch_size} "
          f"(accumulate_grad_batches={trainer.accumulate_grad_batches}); changes {callback.applied}")


if __name__ == "__main__":
    main()
