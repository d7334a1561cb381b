r"""Units of batch sizes and noise scales: examples or tokens, in one place.

A batch of ``B`` sequences of ``T`` tokens is ``B`` *examples* or ``B·T`` *tokens*. The noise scale is a batch
size, so it has the same two readings: with ``Σ`` the covariance of per-example gradients,
``B_simple = tr(Σ)/|G|²`` counts examples, and ``T·tr(Σ)/|G|²`` counts tokens. Everything trainwise writes
follows one rule:

* a record declares its ``unit`` (``"examples"`` or ``"tokens"``) and, for tokens, its ``tokens_per_example``;
* batch-size–like quantities in it (``b_simple``, ``b_noise``, ``trace_sigma``, ``trace_h_sigma`` and their
  averages) are in that unit, so that ``trace_sigma / grad_sq_norm`` *is* ``B_simple`` in that unit;
* ``batch_size``, ``b_small`` and ``examples`` of a record are always in examples (one sequence is one example);
* ``grad_sq_norm``, ``ghg``, ``eps_max`` and ``delta_l_max`` have no batch unit.

Readers convert to examples with :meth:`BatchUnit.to_examples` before they compare a noise scale with a batch
size (the weight ``1/(1 + B̂/B)`` of :mod:`trainwise.noise.averaging`, the plan's learning-rate rules) and
convert back with :meth:`BatchUnit.from_examples` for display. A token budget or throughput meets an
examples-unit measurement only through a known sequence length; without one, :meth:`BatchUnit.tokens_per` refuses.

>>> u = BatchUnit("tokens", 64)
>>> u.to_examples(6400.0), u.from_examples(100.0)
(100.0, 6400.0)
>>> BatchUnit.from_meta({"unit": "examples"}).name
'examples'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["UNITS", "BatchUnit", "parse_quantity", "parse_throughput"]

UNITS = ("examples", "tokens")


def _positive_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


@dataclass(frozen=True)
class BatchUnit:
    """What batch sizes and noise scales are counted in.

    ``name`` is ``"examples"`` or ``"tokens"``; ``tokens_per_example`` (the sequence length) is required for
    tokens and optional for examples (where it lets token budgets and throughputs be converted).
    """

    name: str = "examples"
    tokens_per_example: float | None = None

    def __post_init__(self) -> None:
        if self.name not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}, got {self.name!r}")
        if self.tokens_per_example is not None and not _positive_finite(self.tokens_per_example):
            raise ValueError(f"tokens_per_example must be a positive number, got {self.tokens_per_example!r}")
        if self.name == "tokens" and self.tokens_per_example is None:
            raise ValueError("unit 'tokens' needs tokens_per_example (the sequence length)")

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any], where: str = "the record") -> "BatchUnit":
        """The unit a ``meta`` record (``noise.jsonl`` first line, ``measure.json`` ``meta``) declares.

        A missing ``unit`` means examples (the format's default). A damaged declaration is refused with the
        file and field named in ``where``, never silently read as examples.
        """
        name = meta.get("unit", "examples")
        tpe = meta.get("tokens_per_example")
        if name not in UNITS:
            raise ValueError(f"{where}: field 'unit' is {name!r}; allowed: {', '.join(UNITS)}")
        if tpe is not None and not _positive_finite(tpe):
            raise ValueError(f"{where}: field 'tokens_per_example' is {tpe!r}; it must be a positive number or null")
        if name == "tokens" and tpe is None:
            raise ValueError(f"{where}: unit is 'tokens' but 'tokens_per_example' is missing, so its values cannot be "
                             "converted to examples")
        return cls(name, float(tpe) if tpe is not None else None)

    @property
    def per_example(self) -> float:
        """How many of this unit one example is: ``tokens_per_example`` for tokens, 1 for examples."""
        return float(self.tokens_per_example) if self.name == "tokens" else 1.0

    def to_examples(self, value: float) -> float:
        """A batch size or noise scale in this unit, in examples."""
        return value / self.per_example

    def from_examples(self, value: float) -> float:
        """A batch size or noise scale in examples, in this unit."""
        return value * self.per_example

    def with_sequence_length(self, seq_len: float | None) -> "BatchUnit":
        """The same unit, knowing the sequence length (``--seq-len``); a token unit keeps its own."""
        if seq_len is None or self.tokens_per_example is not None:
            return self
        return BatchUnit(self.name, float(seq_len))

    def tokens_per(self, what: str) -> float:
        """Tokens per example, to convert ``what`` (e.g. ``"--tokens 50M"``); refuses when it is unknown."""
        if self.tokens_per_example is None:
            raise ValueError(f"{what} is in tokens but the measurement counts examples and its sequence length is "
                             "unknown: pass --seq-len (tokens per example), or give the budget in examples "
                             "(--examples 2M) or the throughput in examples (120ex/s)")
        return float(self.tokens_per_example)

    def label(self) -> str:
        if self.name == "tokens":
            return f"tokens ({self.tokens_per_example:g} per example)"
        return "examples"


_SUFFIX = {"": 1.0, "k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6, "b": 1e9, "B": 1e9, "G": 1e9, "t": 1e12, "T": 1e12}
_NUMBER = r"([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBGtT]?)"
_TOKEN_WORDS = ("tok", "token", "tokens")
_EXAMPLE_WORDS = ("ex", "example", "examples", "sample", "samples", "seq", "seqs", "sequence", "sequences")


def parse_quantity(text: str | float | int, what: str = "quantity", *, with_unit: bool = False):
    """Parse ``"20B"``, ``"350M"``, ``"1.5e21"``, ``"1e21 FLOPs"``, ``"3.2M tokens"``, ``"2M examples"``.

    With ``with_unit`` returns ``(value, "tokens" | "examples" | None)``: the unit the text names, if any.

    >>> parse_quantity("20B"), parse_quantity("350M"), parse_quantity("1e21 FLOPs")
    (20000000000.0, 350000000.0, 1e+21)
    >>> parse_quantity("2M examples", with_unit=True)
    (2000000.0, 'examples')
    """
    unit = None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        match = re.fullmatch(_NUMBER + r"\s*(flops?|tokens?|tok|params?|parameters|examples?|ex|samples?|seqs?|sequences?)?",
                             str(text).strip(), flags=re.IGNORECASE)
        if not match:
            raise ValueError(f"cannot read {what} {text!r}; write e.g. 20B, 350M, 1.5e21 or 14000")
        value = float(match.group(1)) * _SUFFIX[match.group(2)]
        word = (match.group(3) or "").lower()
        unit = "tokens" if word in _TOKEN_WORDS else "examples" if word in _EXAMPLE_WORDS else None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be positive and finite, got {text!r}")
    return (value, unit) if with_unit else value


def parse_throughput(text: str | float) -> tuple[float, str]:
    """Parse a per-device throughput: ``"14000tok/s"``, ``"14k tokens/s"``, ``"120ex/s"``, ``"120 samples/s"``.

    Returns ``(value per second, "tokens" | "examples")``; a bare number is tokens per second.

    >>> parse_throughput("14000tok/s")
    (14000.0, 'tokens')
    """
    if isinstance(text, (int, float)):
        return parse_quantity(text, "throughput"), "tokens"
    match = re.fullmatch(_NUMBER + r"\s*(tok|tokens?|ex|examples?|samples?|seqs?|sequences?)?\s*(?:/\s*s(?:ec)?)?",
                         text.strip(), flags=re.IGNORECASE)
    if not match:
        raise ValueError(f"cannot read throughput {text!r}; write e.g. 14000tok/s or 120ex/s (per device)")
    value = float(match.group(1)) * _SUFFIX[match.group(2)]
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"throughput must be positive, got {text!r}")
    unit = (match.group(3) or "tok").lower()
    return value, "tokens" if unit.startswith("tok") else "examples"
