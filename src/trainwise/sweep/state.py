"""The resumable state of a sweep: ``<out>/sweep_state.json``, rewritten (atomically, strict JSON) after every run."""

from __future__ import annotations

import json
from pathlib import Path

from trainwise._io import strict, write_json
from trainwise.sweep.config import SweepConfig

__all__ = ["STATE_FILE", "RESULT_FILE", "load_state", "save_state"]

STATE_FILE = "sweep_state.json"
RESULT_FILE = "sweep.json"


def load_state(path: Path, config: SweepConfig) -> dict:
    """The saved state at ``path``, or a fresh one; refuses a state written by a different configuration
    (``max_steps`` may change: a resumed sweep may train longer)."""
    if not path.exists():
        return {"config": config.to_dict(), "runs": {}, "noise_probes": {}}
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"sweep state {str(path)!r} is not valid JSON ({exc}); delete it to start over") from None
    saved = state.get("config", {})
    mine = strict(config.to_dict())
    differing = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k) and k not in ("max_steps",))
    if differing:
        raise ValueError(
            f"sweep state {str(path)!r} was written by a different configuration (differs in {', '.join(differing)}); "
            "use another --out directory or delete the state file"
        )
    state["config"] = mine
    return state


def save_state(path: Path, state: dict) -> None:
    write_json(path, state)
