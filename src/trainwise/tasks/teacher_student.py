"""Teacher–student classification: a student MLP learns a fixed random teacher network.

Inputs ``x ~ N(0, I_d)``; the teacher is a random two-layer tanh network whose logits, divided by a
temperature, define ``p(y|x)``; labels are *sampled* from it, so the best achievable loss is the teacher's
conditional entropy (reported by :meth:`TeacherStudent.bayes_loss`) and the per-example gradient noise
``Σ`` stays large at the optimum, as in real data. The training split is a fixed pool of
``n_train`` examples (large, so runs rarely repeat an example); the test split is a separate fixed draw.
This is the kind of task the noise-scale predictions of docs/science.md §1 were checked on.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trainwise.tasks.base import ClassificationTask, relu_mlp

__all__ = ["TeacherStudent"]


class TeacherStudent(ClassificationTask):
    eval_chunk = 1024
    name = "teacher-student"
    default_lr = 3e-3
    default_batch_size = 32

    def __init__(
        self,
        device: str | torch.device = "cpu",
        input_dim: int = 16,
        teacher_hidden: int = 32,
        student_hidden: int = 64,
        num_classes: int = 8,
        label_temperature: float = 1.0,
        n_train: int = 100_000,
        n_test: int = 4_096,
        seed: int = 0,
    ) -> None:
        super().__init__(device)
        if label_temperature <= 0:
            raise ValueError(f"label_temperature must be positive, got {label_temperature!r}")
        generator = torch.Generator().manual_seed(seed)
        self.input_dim, self.student_hidden, self.num_classes = input_dim, student_hidden, num_classes
        w1 = torch.randn(input_dim, teacher_hidden, generator=generator) * (2.0 / math.sqrt(input_dim))
        w2 = torch.randn(teacher_hidden, num_classes, generator=generator) * (3.0 / math.sqrt(teacher_hidden))

        def teacher_probs(x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(torch.tanh(x @ w1) @ w2 / label_temperature, dim=-1)

        self._x, self._y, self._p = {}, {}, {}
        for split, count in (("train", n_train), ("test", n_test)):
            x = torch.randn(count, input_dim, generator=generator)
            p = teacher_probs(x)
            y = torch.multinomial(p, 1, generator=generator).squeeze(1)
            self._x[split], self._y[split], self._p[split] = x.to(self.device), y.to(self.device), p

    def make_model(self, seed: int = 0) -> nn.Module:
        return relu_mlp([self.input_dim, self.student_hidden, self.student_hidden, self.num_classes], seed, self.device)

    def bayes_loss(self) -> float:
        """Expected test loss of the teacher itself, ``E_x[H(p(·|x))]`` (the floor no student beats)."""
        p = self._p["test"]
        return float(-(p * p.clamp_min(1e-12).log()).sum(-1).mean())
