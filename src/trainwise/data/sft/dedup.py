"""Exact and near-duplicate prompts: word-level MinHash + LSH, verified by exact Jaccard, with a template guard.

A reader calls two prompts near-duplicates when they share almost all their *words*: one word in
seven changed is still the same request. So the default shingles are the prompt's **word set**
(lower-cased ``\\w+`` tokens, punctuation dropped) and the default threshold is word Jaccard
``≥ 0.75`` (one word in seven replaced gives 6/8 = 0.75; chosen from the planted sets in
``docs/sft-data.md``: 0.7 would also merge six-word prompts that differ in their topic,
"a short poem about cats/bees", 5/7 = 0.71). ``unit="char"``
restores character ``n``-grams (default 5) for near-copies such as the GSM8K Socratic file.

**Template guard.** Templated prompts whose few differing words change the task ("the *maximum*
of a list" vs "the *minimum*"; "age *over* 30" vs "*under* 30"; "*3* apples" vs "*5* apples";
"does" vs "does *not*") are as similar as real near-duplicates by any bag-of-words measure. A
verified pair is therefore kept apart when the words that differ (the symmetric difference of
the two word sets) contain a number, a comparison or direction word, or a negation; the pair is
listed in :attr:`NearDuplicates.guarded` with the words that decided it.

MinHash-LSH and connected components come from :mod:`trainwise.data.similarity` (shared with
the pre-training pipeline): candidates from ``b`` bands of ``r`` rows, probability
``P(s) = 1 − (1 − s^r)^b`` (word default ``b = 32, r = 4``: ``P(0.75) ≈ 1 − 10⁻⁵``; char default
``b = 20, r = 5``), then verified exactly, so reported pairs have no false positives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, Sequence


from trainwise.data.sft._text import char_shingles, exact_key, hash_array, words
from trainwise.data.similarity import MinHasher, candidate_probability, connected_components, jaccard, lsh_candidates

__all__ = [
    "candidate_probability",
    "jaccard",
    "MinHasher",
    "NearDuplicates",
    "find_near_duplicates",
    "find_exact_duplicates",
    "shingles",
    "task_changing_difference",
    "DEFAULT_NEAR_THRESHOLD",
]

DEFAULT_NEAR_THRESHOLD = 0.75

_NUMBER_WORDS = set("""zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen
seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million billion
half twice double triple once first second third fourth fifth last""".split())
_COMPARISON_WORDS = set("""max maximum min minimum largest smallest biggest highest lowest greatest least most fewest more less fewer
greater smaller larger bigger higher lower longer shorter longest shortest oldest youngest older younger earliest latest
earlier later over under above below before after increase decrease increasing decreasing ascending descending top bottom
best worst odd even positive negative add subtract plus minus multiply divide sum product difference true false left
right up down start end begin inside outside within beyond early late fast slow faster slower cheapest expensive
cheaper dearer hot cold hotter colder warmest coldest north south east west""".split())
_NEGATION_WORDS = set("""not no never none nor neither without cannot can't don t isn aren wasn weren doesn didn won wouldn
shouldn couldn nothing nobody nowhere except exclude excluding""".split())
_NUMERIC = re.compile(r"\d")


def task_changing_difference(a: str | set[str], b: str | set[str]) -> str | None:
    """The words that make two similar prompts different tasks, or ``None``.

    Looks at the symmetric difference of the word sets: a number (digits or a number word), a
    comparison/direction word, or a negation.

    >>> task_changing_difference("Return the max of a list", "Return the min of a list")
    'comparison: max/min'
    >>> task_changing_difference("Write a short poem", "Compose a short poem") is None
    True
    """
    set_a = set(words(a)) if isinstance(a, str) else a
    set_b = set(words(b)) if isinstance(b, str) else b
    differing = set_a ^ set_b
    for label, test in (("numbers", lambda w: bool(_NUMERIC.search(w)) or w in _NUMBER_WORDS),
                        ("comparison", lambda w: w in _COMPARISON_WORDS),
                        ("negation", lambda w: w in _NEGATION_WORDS)):
        hits = sorted(w for w in differing if test(w))
        if hits:
            return f"{label}: {'/'.join(hits[:4])}"
    return None


def shingles(text: str, unit: Literal["word", "char"] = "word", ngram: int | None = None) -> set[str]:
    """The shingle set of ``text``: word ``ngram``-grams (default 1: the word set) or character ``ngram``-grams (default 5)."""
    if unit == "char":
        return char_shingles(text, 5 if ngram is None else ngram)
    if unit != "word":
        raise ValueError(f"unit must be 'word' or 'char', got {unit!r}")
    n = 1 if ngram is None else ngram
    tokens = words(text)
    if n == 1:
        return set(tokens)
    return {" ".join(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1))} if tokens else set()


@dataclass
class NearDuplicates:
    """Verified near-duplicate pairs and the groups they form.

    ``pairs`` are ``(i, j, jaccard)`` with ``i < j``; ``clusters`` lists index groups of size ≥ 2,
    each sorted; ``duplicate_of[j] = i`` maps every non-first member to its group's first index;
    ``guarded`` are ``(i, j, jaccard, why)`` pairs above the threshold that the template guard kept apart.
    """

    pairs: list[tuple[int, int, float]] = field(default_factory=list)
    clusters: list[list[int]] = field(default_factory=list)
    duplicate_of: dict[int, int] = field(default_factory=dict)
    candidates: int = 0
    guarded: list[tuple[int, int, float, str]] = field(default_factory=list)


def find_exact_duplicates(texts: Sequence[str]) -> dict[int, int]:
    """``{j: i}`` for every text equal (after :func:`~trainwise.data.sft._text.exact_key`) to an earlier text ``i``."""
    first: dict[str, int] = {}
    duplicate_of: dict[int, int] = {}
    for index, text in enumerate(texts):
        key = exact_key(text)
        if key in first:
            duplicate_of[index] = first[key]
        else:
            first[key] = index
    return duplicate_of


def find_near_duplicates(
    texts: Sequence[str],
    threshold: float = DEFAULT_NEAR_THRESHOLD,
    ngram: int | None = None,
    bands: int | None = None,
    rows: int | None = None,
    seed: int = 0,
    only_across: Sequence[int] | None = None,
    unit: Literal["word", "char"] = "word",
    guard: bool = True,
) -> NearDuplicates:
    """Pairs of texts whose shingle Jaccard is ``>= threshold`` (word sets by default), template guard applied.

    ``only_across``: a group label per text; when given, only pairs from different groups are
    reported (e.g. train vs evaluation). ``guard=False`` turns the template guard off.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    if only_across is not None and len(only_across) != len(texts):
        raise ValueError(f"only_across has {len(only_across)} labels for {len(texts)} texts")
    default_bands, default_rows = (32, 4) if unit == "word" else (20, 5)
    bands, rows = bands or default_bands, rows or default_rows
    shingle_sets = [shingles(t, unit, ngram) for t in texts]
    hasher = MinHasher(bands, rows, seed)
    signatures = hasher.signatures([hash_array(s) for s in shingle_sets])  # [N, b·r]
    candidates = lsh_candidates(signatures, bands, rows, skip=[not s for s in shingle_sets])
    word_sets = shingle_sets if unit == "word" and (ngram or 1) == 1 else None
    pairs: list[tuple[int, int, float]] = []
    guarded: list[tuple[int, int, float, str]] = []
    for i, j in sorted(candidates):
        if only_across is not None and only_across[i] == only_across[j]:
            continue
        similarity = jaccard(shingle_sets[i], shingle_sets[j])
        if similarity < threshold:
            continue
        if guard:
            why = task_changing_difference(word_sets[i], word_sets[j]) if word_sets else task_changing_difference(texts[i], texts[j])
            if why is not None:
                guarded.append((i, j, similarity, why))
                continue
        pairs.append((i, j, similarity))
    clusters, duplicate_of = connected_components(len(texts), pairs)
    return NearDuplicates(pairs=pairs, clusters=clusters, duplicate_of=duplicate_of, candidates=len(candidates), guarded=guarded)


