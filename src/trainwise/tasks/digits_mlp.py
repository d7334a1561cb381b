"""An MLP classifying scikit-learn's bundled 8×8 handwritten digits (1,797 images, no download)."""

from __future__ import annotations

import torch
from torch import nn

from trainwise._optional import require
from trainwise.tasks.base import ClassificationTask, relu_mlp

__all__ = ["DigitsMLP"]


class DigitsMLP(ClassificationTask):
    name = "digits-mlp"
    default_lr = 3e-3
    default_batch_size = 32

    def __init__(self, device: str | torch.device = "cpu", hidden: int = 128, test_fraction: float = 0.2, seed: int = 0):
        super().__init__(device)
        datasets = require("sklearn.datasets", extra="tasks", purpose="the digits task")
        digits = datasets.load_digits()
        x = torch.tensor(digits.data, dtype=torch.float32) / 16.0  # pixels 0..16 -> 0..1
        y = torch.tensor(digits.target, dtype=torch.long)
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
        n_test = int(round(test_fraction * len(y)))
        test, train = order[:n_test], order[n_test:]
        mean, std = x[train].mean(0), x[train].std(0).clamp_min(1e-3)
        x = (x - mean) / std
        self.hidden = hidden
        self._x = {"train": x[train].to(self.device), "test": x[test].to(self.device)}
        self._y = {"train": y[train].to(self.device), "test": y[test].to(self.device)}

    def make_model(self, seed: int = 0) -> nn.Module:
        return relu_mlp([64, self.hidden, self.hidden, 10], seed, self.device)
