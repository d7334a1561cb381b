"""Thin adapters from training frameworks to the noise-scale monitor and the batch-size controller.

- :mod:`trainwise.integrations.torchrun`: :class:`AdaptiveBatchLoop` for a plain loop or torchrun DDP.
- :mod:`trainwise.integrations.hf`: ``NoiseScaleCallback`` for ``transformers.Trainer`` (extra ``hf``).
- :mod:`trainwise.integrations.lightning`: ``AdaptiveBatchCallback`` (extra ``lightning``).
- :mod:`trainwise.integrations.logging`: JSONL and TensorBoard sinks.

The HF and Lightning modules import their framework, so they are not imported here.
"""

from trainwise.integrations.logging import JsonlSink, Sinks, TensorBoardSink
from trainwise.integrations.torchrun import AdaptiveBatchLoop, scale_lr_for_next_step, scaled_lr

__all__ = ["AdaptiveBatchLoop", "JsonlSink", "Sinks", "TensorBoardSink", "scale_lr_for_next_step", "scaled_lr"]
