"""Tiny in-memory data for the examples: character windows of the text that ships with Python."""

from __future__ import annotations

import torch

from trainwise.tasks.char_gpt import builtin_text


def char_windows(n: int, length: int, seed: int = 0) -> tuple[torch.Tensor, int]:
    """``n`` windows of ``length`` character ids (shape ``[n, length]``) and the vocabulary size."""
    text = builtin_text()[:200_000]
    chars = sorted(set(text))
    data = torch.tensor([chars.index(c) for c in text[:50_000]], dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(len(data) - length, (n,), generator=generator)
    return data[starts[:, None] + torch.arange(length)], len(chars)


class WindowDataset(torch.utils.data.Dataset):
    """``{"input_ids", "labels"}`` items (labels = inputs; the model shifts them)."""

    def __init__(self, windows: torch.Tensor):
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.windows[i], "labels": self.windows[i]}


def tiny_gpt2(vocab_size: int, length: int, seed: int = 0):
    """A 1-layer GPT-2 built from a config (no download), dropout off."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab_size, n_positions=length, n_embd=32, n_layer=1, n_head=2,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config)
    # transformers derives loss_type from the class name; "GPT2LMHeadModel" matches nothing, so the
    # Trainer would count every label (not labels[..., 1:]) in num_items_in_batch and scale the
    # gradient by (T-1)/T. Name the loss the model really uses.
    model.loss_type = "ForCausalLM"
    return model
