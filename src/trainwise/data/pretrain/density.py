"""Knowledge-density and length signals of a document (all cheap, no model).

For a text with bytes ``x``, word tokens ``w_1..w_N`` (regex ``\\w+``, lower-cased):

- ``compression_ratio = |zlib(x)| / |x|`` — higher means less redundancy (boilerplate and repeated
  templates compress well; dense prose near 0.35–0.45 for English);
- ``distinct_3gram_ratio = |{(w_i, w_i+1, w_i+2)}| / (N − 2)`` — share of distinct word trigrams;
- ``content_word_ratio`` — share of word tokens that are alphabetic and not stop words;
- ``number_ratio`` — share of tokens that contain a digit;
- ``formula_ratio`` — LaTeX commands, ``$…$`` spans and math symbols per word;
- length: ``n_chars``, ``n_words``, ``approx_tokens = n_chars / 4`` (GPT-2 BPE averages ≈ 4 chars/token in English).

``density_score`` ∈ [0, 1] is the mean of four clipped signals (compression, distinct 3-grams, content
words, numbers-and-formulae), used as the per-document quality in the mixture planner.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

__all__ = ["STOP_WORDS", "density_signals"]

STOP_WORDS = frozenset(
    "a an the and or but if of to in on at by for with from as is are was were be been being have has had do does "
    "did this that these those it its he she they them his her their we our you your i me my not no so than then "
    "there here which who whom what when where why how all any each can could will would shall should may might "
    "must into about over under up down out off again also just only very".split()
)
_WORD = re.compile(r"\w+", re.UNICODE)
_FORMULA = re.compile(r"\\[a-zA-Z]+|\$[^$\n]{1,200}\$|[=±×÷∑∫√∞≤≥≈∂∇^]")


def _clip(x: float, lo: float, hi: float) -> float:
    return min(1.0, max(0.0, (x - lo) / (hi - lo)))


def density_signals(text: str) -> dict[str, Any]:
    """Density and length attributes of ``text`` (see module docstring for the definitions).

    >>> s = density_signals("the cat sat on the mat " * 50)
    >>> s["distinct_3gram_ratio"] < 0.1, s["compression_ratio"] < 0.1
    (True, True)
    """
    raw = text.encode("utf-8")
    n_bytes = len(raw)
    words = _WORD.findall(text.lower())
    n_words = len(words)
    compression_ratio = len(zlib.compress(raw, 6)) / n_bytes if n_bytes else 0.0
    if n_words >= 3:
        trigrams = set(zip(words, words[1:], words[2:]))
        distinct_3gram_ratio = len(trigrams) / (n_words - 2)
    else:
        distinct_3gram_ratio = 0.0
    content = sum(1 for w in words if w.isalpha() and w not in STOP_WORDS)
    numbers = sum(1 for w in words if any(ch.isdigit() for ch in w))
    content_word_ratio = content / n_words if n_words else 0.0
    number_ratio = numbers / n_words if n_words else 0.0
    formula_ratio = len(_FORMULA.findall(text)) / n_words if n_words else 0.0
    if n_words:
        numbers_and_formulae = min(1.0, 0.5 + 5.0 * (number_ratio + formula_ratio))
        density_score = (
            _clip(compression_ratio, 0.15, 0.40)
            + _clip(distinct_3gram_ratio, 0.5, 0.95)
            + _clip(content_word_ratio, 0.2, 0.55)
            + numbers_and_formulae
        ) / 4.0
    else:
        density_score = 0.0
    return {
        "n_chars": len(text),
        "n_words": n_words,
        "approx_tokens": round(len(text) / 4.0),
        "compression_ratio": round(compression_ratio, 4),
        "distinct_3gram_ratio": round(distinct_3gram_ratio, 4),
        "content_word_ratio": round(content_word_ratio, 4),
        "number_ratio": round(number_ratio, 4),
        "formula_ratio": round(formula_ratio, 4),
        "density_score": round(density_score, 4),
    }
