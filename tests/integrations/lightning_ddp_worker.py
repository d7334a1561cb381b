"""Lightning ``strategy="ddp"`` on 2 CPU processes (gloo): the callback measures with the ddp source; rank 0 writes
its records and the ``b_simple`` Lightning logged to argv[1]. Run as a script (Lightning relaunches it per rank)."""

import json
import sys

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from trainwise.integrations.lightning import AdaptiveBatchCallback
from trainwise.tasks import get_task

STEPS, PER_RANK, WORLD = 6, 6, 2


class Halves(Dataset):
    """Rank r's share of global batch k is rows [r*PER_RANK, (r+1)*PER_RANK) of batch k of a common stream."""

    def __init__(self, rank: int):
        task = get_task("digits-mlp")
        stream = task.batches(PER_RANK * WORLD, seed=7)
        self.rows = []
        for _ in range(STEPS):
            x, y = next(stream)
            mine = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
            self.rows += list(zip(x[mine].double(), y[mine]))

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


class Module(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.task = get_task("digits-mlp")
        self.net = self.task.make_model(seed=0).double()

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        return self.task.loss_fn(self.net, batch).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(Halves(self.global_rank), batch_size=PER_RANK, shuffle=False)


class Seen(pl.Callback):
    def __init__(self):
        self.logged = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        value = trainer.callback_metrics.get("b_simple")
        self.logged.append(None if value is None else float(value))


def main(out_path: str) -> None:
    torch.set_num_threads(1)
    callback, seen = AdaptiveBatchCallback(ema_steps=3), Seen()
    trainer = pl.Trainer(accelerator="cpu", devices=WORLD, strategy="ddp", max_steps=STEPS, log_every_n_steps=1,
                         callbacks=[callback, seen], use_distributed_sampler=False, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=str(out_path) + ".dir")
    trainer.fit(Module())
    if trainer.is_global_zero:
        with open(out_path, "w") as fh:
            json.dump({"records": [dict(r) for r in callback.records], "logged": seen.logged,
                       "source": callback.monitor.source}, fh)


if __name__ == "__main__":
    main(sys.argv[1])
