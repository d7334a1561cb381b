"""Training data curation: pre-training corpora (``trainwise.data.pretrain``) and fine-tuning sets."""

from __future__ import annotations

import importlib
from typing import Any

__all__: list[str] = []

# pre-training curation (lazy: nothing heavy is imported until used)
__all__ += ["pretrain", "plan_mixture", "MixtureSampler", "classify_kind", "density_signals", "DSIRScorer"]
_LAZY = {"plan_mixture": "pretrain", "MixtureSampler": "pretrain", "classify_kind": "pretrain",
         "density_signals": "pretrain", "DSIRScorer": "pretrain"}


def __getattr__(name: str) -> Any:
    if name == "pretrain":
        return importlib.import_module(f"{__name__}.pretrain")
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
