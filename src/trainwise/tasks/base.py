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
import torch.nn.functional as F
from torch import nn

__all__ = ["Task", "Batch", "ClassificationTask", "relu_mlp"]

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

    def logits(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """The model's logits on ``batch`` (``[B, C]``, or ``[B, T, V]`` for a sequence), for estimators that need
        the output distribution (SophiaG's Gauss–Newton–Bartlett). Tasks without a softmax output leave it out."""
        raise NotImplementedError(f"task {self.name!r} does not define logits(model, batch)")

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


def relu_mlp(sizes: list[int], seed: int, device: torch.device) -> nn.Module:
    """``Linear → ReLU → … → Linear`` through ``sizes``, deterministic given ``seed``."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).to(device)


class ClassificationTask(Task):
    """A task over fixed tensors ``_x[split]``, ``_y[split]`` (splits ``train`` and ``test``) with cross-entropy."""

    _x: dict[str, torch.Tensor]
    _y: dict[str, torch.Tensor]
    eval_chunk: int = 512

    def loss_fn(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(model(x), y, reduction="none")

    def logits(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return model(batch[0])  # [B, C]

    def num_train_examples(self) -> int:
        return len(self._y["train"])

    def sample_batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        split = "test" if split in ("val", "test") else split
        x, y = self._x[split], self._y[split]
        index = torch.randint(len(y), (batch_size,), generator=generator).to(self.device)
        return x[index], y[index]

    def eval_batches(self) -> list[Batch]:
        x, y = self._x["test"], self._y["test"]
        return [(x[i : i + self.eval_chunk], y[i : i + self.eval_chunk]) for i in range(0, len(y), self.eval_chunk)]

    @torch.no_grad()
    def accuracy(self, model: nn.Module) -> float:
        x, y = self._x["test"], self._y["test"]
        return float((model(x).argmax(-1) == y).float().mean())
