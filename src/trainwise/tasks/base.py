"""The contract every built-in task follows.

A task is a small, real training problem: data that ships with Python or its packages, a model,
and a loss that returns one value per example (shape ``[B]``), the form every trainwise
measurement takes. Batches are drawn i.i.d. with replacement from the training split, so the
per-example covariance ``Σ`` of McCandlish et al. is the covariance over that split.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterator

import torch
from torch import nn

__all__ = ["Task", "Batch"]

Batch = tuple[torch.Tensor, ...]


class Task(ABC):
    #: registry name, e.g. ``"char-gpt"``
    name: str = ""
    #: tokens per example when the task is a sequence task (one sequence = one example), else None
    tokens_per_example: int | None = None
    #: a learning rate that trains the default model well with ``default_optimizer``
    default_lr: float = 1e-3
    default_batch_size: int = 32
    default_optimizer: str = "adamw"

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)

    @abstractmethod
    def make_model(self, seed: int = 0) -> nn.Module:
        """A freshly initialised model on ``self.device``, deterministic given ``seed``."""

    @abstractmethod
    def loss_fn(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Per-example losses, shape ``[B]``; the training loss is their mean."""

    @abstractmethod
    def num_train_examples(self) -> int:
        """Size of the training split the batches are drawn from."""

    @abstractmethod
    def sample_batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        """``batch_size`` examples drawn uniformly with replacement from ``split``."""

    @abstractmethod
    def eval_batches(self) -> list[Batch]:
        """A fixed held-out set (same every call), in batches."""

    def batches(self, batch_size: int, seed: int = 0, split: str = "train") -> Iterator[Batch]:
        """An endless, seeded stream of i.i.d. batches."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        generator = torch.Generator().manual_seed(seed)
        while True:
            yield self.sample_batch(batch_size, generator, split)

    @torch.no_grad()
    def eval_loss(self, model: nn.Module) -> float:
        """Mean per-example loss on the held-out set."""
        was_training = model.training
        model.eval()
        total, count = 0.0, 0
        for batch in self.eval_batches():
            losses = self.loss_fn(model, batch)
            total += float(losses.sum())
            count += losses.numel()
        model.train(was_training)
        return total / count

    def make_optimizer(self, model: nn.Module, lr: float | None = None, name: str | None = None) -> torch.optim.Optimizer:
        """The optimizer the task is tuned for (``adamw`` or ``sgd``)."""
        lr = self.default_lr if lr is None else lr
        name = name or self.default_optimizer
        params = [p for p in model.parameters() if p.requires_grad]
        if name == "adamw":
            return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
        if name == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=0.0)
        if name == "sgdm":
            return torch.optim.SGD(params, lr=lr, momentum=0.9)
        raise ValueError(f"unknown optimizer {name!r}; use adamw, sgd or sgdm")

    def describe(self) -> dict:
        return {
            "task": self.name,
            "train_examples": self.num_train_examples(),
            "tokens_per_example": self.tokens_per_example,
        }
