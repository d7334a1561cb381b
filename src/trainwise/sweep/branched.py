"""Deprecated location of the branched critical-batch method: the driver is
:func:`trainwise.experiments.branched.run_branched`, its configuration :class:`trainwise.sweep.config.BranchedConfig`
and its result :class:`trainwise.results.BranchedResult`."""

from trainwise._deprecated import moved
from trainwise.sweep.config import BranchedConfig

__all__ = ["BranchedConfig", "run_branched"]

STATE_FILE = "branched_state.json"
RESULT_FILE = "branched.json"

__getattr__ = moved(__name__, {"run_branched": "trainwise.experiments.branched"})
