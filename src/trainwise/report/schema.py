"""The shape of the result files the report reads (measure, plan, sweep, branched), checked before any of it is
drawn, so a damaged file is refused in one line naming the file and the field instead of a ``KeyError`` deep in a
section or a plot.

A shape is a type name (``num``: a number, ``pos``: a positive finite number, ``int``, ``str``, ``bool``,
``any``; a trailing ``?`` allows ``null``), a list of one shape (every item; ``[shape, n]``: at least ``n``
items), or a dict of shapes (a key ending in
``?`` may be absent; ``*`` gives the shape of any other key, which are otherwise allowed as they are).

>>> check({"a": {"b": 1}}, {"a": {"b": "str"}}, "x.json")
Traceback (most recent call last):
...
ValueError: x.json: field 'a.b' must be a string, got 1
"""

from __future__ import annotations

import math
from typing import Any

from trainwise.results import PREDICTORS

__all__ = ["check", "or_null", "SHAPES"]

_WHAT = {"num": "a number", "pos": "a positive number", "int": "a whole number", "str": "a string",
         "bool": "true or false", "dict": "an object", "list": "a list"}


def _ok(kind: str, value: Any) -> bool:
    if kind == "any":
        return True
    if kind in ("num", "pos", "int") and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return False
    if kind == "pos":
        return math.isfinite(value) and value > 0
    if kind == "int":
        return isinstance(value, int)
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    return True


def or_null(shape: Any) -> dict:
    """``shape``, or ``null``."""
    return {"__or_null__": shape}


def check(value: Any, shape: Any, where: str, field: str = "") -> None:
    """Raise ``ValueError("<where>: field '<a.b[2].c>' must be ...")`` where ``value`` does not fit ``shape``."""
    name = field or "(top level)"
    if isinstance(shape, dict) and "__or_null__" in shape:
        if value is None:
            return
        shape = shape["__or_null__"]
    if isinstance(shape, str):
        nullable = shape.endswith("?")
        kind = shape.rstrip("?")
        if kind == "any" or (value is None and nullable):
            return
        if value is None or not _ok(kind, value):
            raise ValueError(f"{where}: field {name!r} must be {_WHAT.get(kind, kind)}"
                             f"{' or null' if nullable else ''}, got {repr(value)[:60]}")
        return
    if isinstance(shape, list):
        if not isinstance(value, list):
            raise ValueError(f"{where}: field {name!r} must be a list, got {repr(value)[:60]}")
        if len(shape) > 1 and len(value) < shape[1]:
            raise ValueError(f"{where}: field {name!r} must hold at least {shape[1]} item(s), got {len(value)}")
        for i, item in enumerate(value):
            check(item, shape[0], where, f"{field}[{i}]")
        return
    if not isinstance(value, dict):
        raise ValueError(f"{where}: field {name!r} must be an object, got {repr(value)[:60]}")
    for key, sub in shape.items():
        if key == "*":
            continue
        optional = key.endswith("?")
        key = key.rstrip("?")
        path = f"{field}.{key}" if field else key
        if key not in value:
            if optional:
                continue
            raise ValueError(f"{where}: field {path!r} is missing")
        check(value[key], sub, where, path)
    if "*" in shape:
        named = {k.rstrip("?") for k in shape}
        for key, item in value.items():
            if key not in named:
                check(item, shape["*"], where, f"{field}.{key}" if field else str(key))


_EST = {"value": "num?", "stderr?": "num?", "*": "any"}
_FILES = or_null({"*": "str?"})

#: what each section (and its plot, when redrawn) reads
SHAPES: dict[str, Any] = {
    "measure": {"meta?": {"unit?": "str", "*": "any"},
                "summary?": {"window?": {"*": "any"}, "b_simple?": or_null(_EST), "b_noise?": or_null(_EST),
                             "b_simple_precond?": or_null(_EST), "b_noise_precond?": or_null(_EST),
                             "b_simple_monitor?": or_null(_EST), "eps_max?": or_null(_EST), "*": "any"},
                "checkpoints?": [{"b_simple?": "any", "b_noise?": "any", "*": "any"}],
                "files?": _FILES, "*": "any"},
    "plan": {"unit": "str",
             "table": [{"batch_size": "pos", "steps": "pos", "tokens": "num?", "examples": "num?",
                        "steps_over_min": "num?", "data_over_min": "num?", "wall_clock_h?": "num?",
                        "device_hours?": "num?", "flops?": "num?", "recommended": "bool", "knee": "bool", "*": "any"}, 1],
             "recommendation": {"batch_size": "num?", "lr": "num?", "why": "str", "lr_source": "any",
                                "lr_validation?": "str?", "lr_options?": or_null({"*": "num?"}),
                                "lr_limits?": or_null({"stability?": "num?", "*": "any"}), "*": "any"},
             "b_crit": {"value": "pos", "low": "num?", "high": "num?", "source": "str", "why": "str", "*": "any"},
             "tradeoff": {"target": "str", "e_min": "pos", "s_min": "pos", "*": "any"},
             "inputs?": or_null({"devices?": "num?", "*": "any"}),
             "measurement?": or_null({"predictors?": or_null({"*": {**_EST}}), "*": "any"}),
             "laws?": or_null({"*": {"citation": "str", "*": "any"}}),
             "published_runs": [{"name": "str", "params": "num?", "tokens": "num?", "batch_tokens": "num?",
                                 "batch_sequences": "num", "seq_len": "num?", "lr": "num?",
                                 "ratio_to_recommended?": "num?", "source": "str", "note?": "str?", "*": "any"}],
             "notes?": ["str"], "files?": _FILES, "*": "any"},
    "sweep": {"config": {"task": "any", "batch_sizes": ["pos", 1], "targets": ["num", 1], "lrs?": ["num"],
                         "lr_rule?": "str", "lr_factors?": ["num"], "max_steps": "any", "*": "any"},
              "fits": {"*": {"s_min": "num", "e_min": "num", "b_crit": "num", "b_crit_stderr": "num?",
                             "n_points": "num?", "*": "any"}},
              "noise": {"how": "str", "per_batch_size?": {"*": {"lr": "num", "targets?": {"*": {"*": "any"}}, "*": "any"}},
                        "targets?": {"*": {**{f"{name}?": {"value?": "num?", "*": "any"} for name in PREDICTORS},
                                                    "*": "any"}}, "*": "any"},
              "steps_table": {"*": {"*": "num?"}}, "runs?": {"*": {"*": "any"}},
              "notes?": ["str"], "files?": _FILES, "*": "any"},
    "branched": {"method": "str",
                 "checkpoints": [{"step": "num", "examples": "num", "loss": "num?", "b_crit": "pos", "capped": "bool",
                                  "*": "any"}, 1],
                 "files?": _FILES, "*": "any"},
}
