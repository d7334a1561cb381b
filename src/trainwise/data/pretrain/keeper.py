"""Which copy of a verified duplicate cluster to keep: the one a reader would want.

Order of the criteria (first difference decides):

1. **explicit preference** — a number the user gave: the source's ``preference:`` in the config, else the
   preference weight of a kind the config (or the record's metadata) states. A kind guessed from the text is
   not explicit: an edited copy can be classed differently from its original.
2. **fewer signs of corruption** — the signs of :func:`corruption_rate` counted on what differs between
   the copies (:func:`choose_keeper`);
3. **input order** — the source listed first in the config, then file, then record.

``density_score`` is not used: random word edits raise its distinct-trigram and content-word shares, so it
ranks a corrupted copy above its original (issue 15: 49 of 51 clusters kept the edited copy).

``corruption_rate`` of a text with ``N`` word tokens, each term a count per word:

- broken sentence boundaries (a sentence end followed by a lower-case word, ``". the"``), a capitalised
  word inside a sentence after a lower-case word (``"the Bennet house"`` counts once in every copy, an
  inserted ``"Gentleman"`` only in the edited one), repeated words (``"the the"``), stray punctuation
  (``",,"``, ``" ,"``), words with digits and letters mixed, words without vowels;
- with a background (word and word-bigram document frequencies ``df`` of the *other* clusters' documents), the
  mean rarity ``1 / (1 + df(b))`` of the text's distinct words and word bigrams ``b``: a word dropped into
  a random place forms bigrams that text elsewhere does not contain (and is often a rare word itself), while
  the original's words and bigrams (``"of the"``, ``"she was"``) recur.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["corruption_rate", "bigram_keys", "keeper_order_key", "choose_keeper"]

_TOKEN = re.compile(r"[A-Za-z0-9']+|[^\sA-Za-z0-9']")
_BROKEN_BOUNDARY = re.compile(r"[.!?][\"')\]]?\s+[a-z]")
_MIDSENTENCE_CAPITAL = re.compile(r"\b[a-z][a-z']*\s+[A-Z][a-z]+")
_REPEATED_WORD = re.compile(r"\b(\w+)\s+\1\b", re.IGNORECASE)
_STRAY_PUNCT = re.compile(r"[,;:]\s*[,;:.]|\s[,;:.!?](?!\w)")
_MIXED = re.compile(r"\b(?=\w*\d)(?=\w*[A-Za-z])\w+\b")
_NO_VOWEL = re.compile(r"\b[b-df-hj-np-tv-xzB-DF-HJ-NP-TV-XZ]{4,}\b")
_WORD = re.compile(r"[a-z']+")


def bigram_keys(text: str) -> set[int]:
    """Distinct lower-cased words and word bigrams of ``text`` (punctuation stripped) and its whitespace-separated
    tokens as written, hashed to 32 bits."""
    words = _WORD.findall(text.lower())
    keys = {zlib.crc32(f"{a} {b}".encode()) for a, b in zip(words, words[1:])}
    keys |= {zlib.crc32(f"1 {w}".encode()) for w in words}
    return keys | {zlib.crc32(f"2 {token}".encode()) for token in text.split()}  # as written: case, punctuation


def corruption_rate(text: str, background: Mapping[int, int] | None = None,
                    own_counts: Mapping[int, int] | None = None) -> float:
    """Signs of corruption per word (see module docstring); lower is cleaner.

    ``background`` maps a bigram key to the number of documents containing it; ``own_counts`` (the
    counts this document's cluster contributed) is subtracted so that copies do not vouch for each other.
    """
    n_words = max(1, len(_WORD.findall(text.lower())))
    rate = _anomalies(text) / n_words
    if background:
        keys = bigram_keys(text)
        if keys:
            own = own_counts or {}
            rate += sum(1.0 / (1.0 + max(0, background.get(k, 0) - own.get(k, 0))) for k in keys) / len(keys)
    return rate


def keeper_order_key(info: Mapping[str, Any], corruption: float, source_order: Sequence[str]) -> tuple:
    """Sort key: smallest first is kept (explicit preference, corruption, input order)."""
    explicit = info.get("explicit_preference")
    source = info.get("source")
    position = source_order.index(source) if source in source_order else len(source_order)
    return (-(explicit if isinstance(explicit, (int, float)) else 0.0), round(corruption, 9), position,
            str(info.get("file_path") or ""), _record_key(info.get("record")), tuple(info.get("node", ())))


def _record_key(record: Any) -> tuple:
    return (0, record, "") if isinstance(record, (int, float)) else (1, 0, str(record))


def _anomalies(text: str) -> int:
    return (len(_BROKEN_BOUNDARY.findall(text)) + len(_MIDSENTENCE_CAPITAL.findall(text))
            + len(_REPEATED_WORD.findall(text)) + len(_STRAY_PUNCT.findall(text))
            + len(_MIXED.findall(text)) + len(_NO_VOWEL.findall(text)))


def choose_keeper(members: Sequence[Any], texts: Mapping[Any, str], infos: Mapping[Any, Mapping[str, Any]],
                  source_order: Sequence[str] = (), background: Mapping[int, int] | None = None) -> tuple[Any, dict]:
    """The member to keep and each member's corruption score.

    Copies of one text share most of it, so only what differs is scored: a member's anomaly count plus the
    summed rarity ``1 / (1 + df)`` of its words and bigrams that not every member has, with ``df`` from
    ``background`` (document frequencies over the documents available) less this cluster's own counts.
    """
    keys = {node: bigram_keys(texts.get(node, "")) for node in members}
    common = set.intersection(*keys.values()) if keys else set()
    own: Counter[int] = Counter()
    for node in members:
        own.update(keys[node])
    background = background or {}
    corruption = {}
    for node in members:
        rarity = sum(1.0 / (1.0 + max(0, background.get(k, 0) - own[k])) for k in keys[node] - common)
        corruption[node] = _anomalies(texts.get(node, "")) + rarity
    keeper = min(members, key=lambda node: keeper_order_key({**infos.get(node, {}), "node": node},
                                                           corruption[node], source_order))
    return keeper, corruption


def background_counts(texts: Iterable[str]) -> Counter[int]:
    """Document frequency of every hashed word bigram over ``texts``."""
    counts: Counter[int] = Counter()
    for text in texts:
        counts.update(bigram_keys(text))
    return counts
