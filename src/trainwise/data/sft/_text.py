"""Text normalisation, tokenising and stable hashing shared by the SFT curation modules.

Everything here is deterministic across processes (no use of Python's salted ``hash``), so
shingles, MinHash signatures and hashed features are reproducible from run to run.
"""

from __future__ import annotations

import re
import unicodedata
import zlib

import numpy as np

__all__ = ["normalize", "exact_key", "words", "char_shingles", "word_ngrams", "stable_hash", "hash_array"]

_WORD = re.compile(r"\w+", re.UNICODE)
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """NFKC, lower case, curly quotes folded, whitespace collapsed: the key for *exact* duplicates."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    return _SPACE.sub(" ", text).strip()


_AROUND_PUNCT = re.compile(r"\s*([^\w\s])\s*")


def exact_key(text: str) -> str:
    """:func:`normalize`, spaces around punctuation removed and final ``.?!`` dropped.

    ``"What is 2+2 ?"`` and ``"what is 2+2"`` share a key; ``"2+2"`` and ``"2-2"`` do not.
    """
    return _AROUND_PUNCT.sub(r"\1", normalize(text)).rstrip(".?!")


def words(text: str) -> list[str]:
    """Lower-cased word tokens (``\\w+``) of the normalised text; punctuation is dropped."""
    return _WORD.findall(normalize(text))


def char_shingles(text: str, n: int = 5) -> set[str]:
    """Character ``n``-grams of the words joined by single spaces (punctuation-insensitive).

    Texts shorter than ``n`` characters give one shingle, the whole text (never the empty set
    unless the text has no word character at all).
    """
    joined = " ".join(words(text))
    if not joined:
        return set()
    if len(joined) <= n:
        return {joined}
    return {joined[i : i + n] for i in range(len(joined) - n + 1)}


def word_ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    """Word ``n``-grams of ``tokens``; a text shorter than ``n`` words is one (shorter) gram."""
    if not tokens:
        return []
    if len(tokens) < n:
        return [tuple(tokens)]
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def stable_hash(item: str | tuple[str, ...]) -> int:
    """32-bit CRC of the UTF-8 text (tuples joined by U+0001): stable across processes."""
    if isinstance(item, tuple):
        item = "\x01".join(item)
    return zlib.crc32(item.encode("utf-8"))


def hash_array(items) -> np.ndarray:
    """``stable_hash`` of each item as a uint64 array (values < 2**32)."""
    return np.fromiter((stable_hash(x) for x in items), dtype=np.uint64)
