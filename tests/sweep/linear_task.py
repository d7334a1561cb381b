"""A tiny linear-regression Task for fast sweep tests (noise known in closed form)."""

import torch
from torch import nn

from trainwise.tasks.base import Task


class LinearRegression(Task):
    name = "linreg"
    default_lr = 0.05
    default_batch_size = 8
    default_optimizer = "sgd"

    def __init__(self, device="cpu", n=512, dim=4, noise=0.5, seed=0):
        super().__init__(device)
        g = torch.Generator().manual_seed(seed)
        self.w_true = torch.randn(dim, 1, generator=g)
        self.x = torch.randn(n, dim, generator=g)
        self.y = self.x @ self.w_true + noise * torch.randn(n, 1, generator=g)
        self.x_test = torch.randn(256, dim, generator=g)
        self.y_test = self.x_test @ self.w_true + noise * torch.randn(256, 1, generator=g)

    def make_model(self, seed=0):
        torch.manual_seed(seed)
        return nn.Linear(self.x.shape[1], 1, bias=False)

    def loss_fn(self, model, batch):
        x, y = batch
        return ((model(x) - y) ** 2).squeeze(1)

    def num_train_examples(self):
        return len(self.y)

    def sample_batch(self, batch_size, generator, split="train"):
        i = torch.randint(len(self.y), (batch_size,), generator=generator)
        return self.x[i], self.y[i]

    def eval_batches(self):
        return [(self.x_test, self.y_test)]
