"""Deprecated: ``trainwise measure``'s driver is :func:`trainwise.experiments.measure.run_measurement`; the summary
of its checkpoints is :func:`trainwise.noise.summary.summarize_checkpoints`."""

from trainwise._deprecated import moved

__all__ = ["run_measurement", "summarize_checkpoints"]

__getattr__ = moved(__name__, {"run_measurement": "trainwise.experiments.measure",
                               "summarize_checkpoints": "trainwise.noise.summary",
                               "_checkpoint_steps": "trainwise.noise.summary",
                               "_pooled_average": "trainwise.noise.summary"})
