"""Training-data curation: pre-training pipeline steps and fine-tuning (SFT) set curation, mixture samplers.

Names are resolved lazily (module ``__getattr__``), so importing :mod:`trainwise.data` imports nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module that defines it
_LAZY: dict[str, str] = {
    # fine-tuning data (trainwise.data.sft)
    "TaskMixtureSampler": "trainwise.data.sft.mixing",
    "mixing_rates": "trainwise.data.sft.mixing",
    "sft": "trainwise.data.sft",
    # pre-training corpora (trainwise.data.pretrain)
    "pretrain": "trainwise.data.pretrain",
    "plan_mixture": "trainwise.data.pretrain",
    "MixtureSampler": "trainwise.data.pretrain",
    "classify_kind": "trainwise.data.pretrain",
    "density_signals": "trainwise.data.pretrain",
    "DSIRScorer": "trainwise.data.pretrain",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trainwise.data' has no attribute {name!r}")
    imported = importlib.import_module(module)
    value = imported if module.endswith("." + name) else getattr(imported, name)
    globals()[name] = value
    return value
