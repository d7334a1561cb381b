"""A small GPT (nanoGPT-style) character language model on text that ships with Python.

The default corpus is the English reference documentation bundled in CPython's
``pydoc_data.topics`` (about 465k characters), so the task runs on any machine with Python;
``text_path`` swaps in any UTF-8 text file. One example is one window of ``block_size``
characters, so ``tokens_per_example == block_size``; its loss is the mean next-character
cross-entropy (nats per character) over the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from trainwise.tasks.base import Batch, Task

__all__ = ["CharGPT", "GPT", "GPTConfig", "builtin_text"]


def builtin_text() -> str:
    """CPython's bundled documentation topics, joined in key order (deterministic per Python version)."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


@dataclass
class GPTConfig:
    vocab_size: int
    block_size: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    tie_weights: bool = True


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        if config.n_embd % config.n_head:
            raise ValueError(f"n_embd={config.n_embd} is not divisible by n_head={config.n_head}")
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, time, channels = x.shape
        q, k, v = self.qkv(x).split(channels, dim=2)
        # [B, T, C] -> [B, heads, T, C/heads]
        q, k, v = (t.view(batch, time, self.n_head, channels // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(batch, time, channels))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.fc_proj = nn.Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.fc_proj(F.gelu(self.fc(self.ln_2(x))))


class GPT(nn.Module):
    """Decoder-only transformer: token + position embeddings, pre-norm blocks, tied LM head."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        for name, param in self.named_parameters():  # GPT-2 scaled init of residual projections
            if name.endswith("proj.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        if config.tie_weights:
            self.lm_head.weight = self.wte.weight

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """``idx``: [B, T] character ids -> logits [B, T, vocab]."""
        batch, time = idx.shape
        if time > self.config.block_size:
            raise ValueError(f"sequence length {time} exceeds block_size {self.config.block_size}")
        # positions expanded to [B, T] (a view) so per-example gradient hooks see the batch dimension
        pos = torch.arange(time, device=idx.device).expand(batch, time)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in {id(p): p for p in self.parameters()}.values())


class CharGPT(Task):
    name = "char-gpt"
    default_lr = 2e-3
    default_batch_size = 32

    def __init__(
        self,
        device: str | torch.device = "cpu",
        text: str | None = None,
        text_path: str | Path | None = None,
        block_size: int = 64,
        n_layer: int = 2,
        n_head: int = 4,
        n_embd: int = 64,
        val_fraction: float = 0.1,
        eval_examples: int = 256,
    ):
        super().__init__(device)
        if text is None:
            text = Path(text_path).read_text(encoding="utf-8") if text_path else builtin_text()
        if len(text) < 10 * (block_size + 1):
            raise ValueError(f"text of {len(text)} characters is too short for block_size={block_size}")
        self.chars = sorted(set(text))
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}
        data = torch.tensor([self.stoi[ch] for ch in text], dtype=torch.long)
        n_val = int(len(data) * val_fraction)
        self._data = {"train": data[: len(data) - n_val].to(self.device), "val": data[len(data) - n_val :].to(self.device)}
        self.config = GPTConfig(len(self.chars), block_size, n_layer, n_head, n_embd)
        self.tokens_per_example = block_size
        self.eval_examples = eval_examples

    def make_model(self, seed: int = 0) -> nn.Module:
        torch.manual_seed(seed)
        return GPT(self.config).to(self.device)

    def loss_fn(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        (windows,) = batch  # [B, T+1]
        logits = model(windows[:, :-1])
        token_loss = F.cross_entropy(logits.transpose(1, 2), windows[:, 1:], reduction="none")  # [B, T]
        return token_loss.mean(dim=1)

    def logits(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return model(batch[0][:, :-1])  # [B, T, V]: the next-token logits of each window's first T tokens

    def num_train_examples(self) -> int:
        return len(self._data["train"]) - self.config.block_size

    def _windows(self, starts: torch.Tensor, split: str) -> torch.Tensor:
        offsets = torch.arange(self.config.block_size + 1, device=self.device)
        return self._data[split][starts.to(self.device)[:, None] + offsets]

    def sample_batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        split = "val" if split in ("val", "test") else split
        high = len(self._data[split]) - self.config.block_size
        return (self._windows(torch.randint(high, (batch_size,), generator=generator), split),)

    def eval_batches(self) -> list[Batch]:
        high = len(self._data["val"]) - self.config.block_size
        starts = torch.linspace(0, high - 1, self.eval_examples).long()
        windows = self._windows(starts, "val")
        return [(windows[i : i + 128],) for i in range(0, len(windows), 128)]
