"""The quality floor: per-example checks that *drop* an answer, each with its reason.

datatrove-style filters ``example -> (keep, reason, detail)``; every check is deliberately
narrow so a clean answer is not dropped (the false-drop rates on real Dolly and GSM8K answers are
in ``docs/sft-data.md``):

* ``refusal``: refusal boilerplate in the first 200 characters ("As an AI language model",
  "I'm sorry, but I can't", "I am unable to", ...).
* ``short_answer``: at most 3 words in answer to an open-ended request (write, explain, describe,
  list, summarise, ...), or a bare filler word ("ok", "yes", "sure", "thanks") to anything but a
  yes/no question. "What is 2+2?" → "4" stays.
* ``truncated_response`` (sentence-level, any word): the answer has at least 12 words, its last
  line is prose (not a list item, heading, code or an answer marker such as ``#### 18``), its
  writer ends sentences with punctuation (earlier in that line, or on every earlier prose line,
  at least two), and the text after the last sentence end has at least 6 words and no end;
  plus the cheap signs (unclosed code fence, a dangling comma/bracket/article/connective, ``[truncated]``).
* ``unrelated_answer`` (set-level, :func:`unrelated_answers`): the answer (≥ 8 words) has a
  content-word TF-IDF cosine below 0.05 with its own prompt (≥ 4 content words) *and* fits another
  prompt of the set: cosine ≥ max(0.15, 3 × its own), with at least 2 shared content words. That is the common real failure
  (answers shifted against their prompts); lists of names that simply do not repeat the prompt's
  words stay. With a local LM, IFD > 1 (``--max-ifd``) is the stronger, general test.
* ``low_quality``: heuristic ``quality`` (:func:`~trainwise.data.sft.scores.heuristic_scores`)
  below ``min_quality``.
"""

from __future__ import annotations

import re

__all__ = ["is_refusal", "is_short_answer", "is_truncated", "content_words", "unrelated_answers", "STOPWORDS"]

_REFUSAL = re.compile(
    r"\b(as an ai\b|as a (large )?language model|i('m| am) (sorry|afraid),? but i (can(no|')t|am unable|won't)|"
    r"i (cannot|can't|can not|won't|will not) (help|assist|provide|fulfil+|comply|answer|do that|write|create|generate|share|give)|"
    r"i('m| am) (unable|not able) to|i do(n't| not) have (access|the ability|personal)|"
    r"it(('s)| is) not appropriate for me|i apologi[sz]e,? but)",
    re.I,
)
_OPEN_ENDED = re.compile(
    r"\b(write|explain|describe|compose|generate|create|list|summari[sz]e|draft|discuss|compare|elaborate|brainstorm|"
    r"outline|essay|story|poem|paragraph|steps|reasons|ideas|examples)\b", re.I)
_FILLER = {"ok", "okay", "yes", "no", "sure", "thanks", "thank you", "n/a", "na", "idk", "none", "nothing", "hello", "hi",
           "fine", "yep", "nope", "k", "good", "yes.", "no."}
_YES_NO = re.compile(r"^\s*(is|are|was|were|do|does|did|can|could|will|would|should|has|have|had|am)\b", re.I)
_TERMINAL = tuple('.!?")]}\'`*>|:;…。！？')
_LISTLIKE = re.compile(r"^\s*([-*•#>|]|\d+[.)]|[a-z][.)]\s|```)", re.I)
_SENTENCE_END = re.compile(r"[.!?…。！？][\"')\]]*(\s|$)")
_DANGLING = (",", "-", "(", "[", "{")
_DANGLING_WORDS = {"and", "or", "the", "a", "an", "of", "to", "with", "for", "in", "on", "but", "because", "is", "are", "that", "which"}

STOPWORDS = set("""a an the and or but if of to in on at by for with about as into from up down over under is are was were be been
being do does did have has had i you he she it we they me him her us them my your his its our their this that these those what
which who whom whose when where why how there here can could would should will shall may might must not no yes so than then
too very just also only any some all each every more most other such own same few both either neither one please tell give
me let make get use using write explain describe list""".split())
_WORD = re.compile(r"[a-z0-9]+")


def content_words(text: str) -> set[str]:
    """Lower-cased alphanumeric words minus a small stopword list (and words of one letter)."""
    return {w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1}


def is_refusal(response: str) -> tuple[bool, str]:
    match = _REFUSAL.search(response[:200])
    return (True, f"refusal phrase {match.group(0)!r}") if match else (False, "")


def is_short_answer(prompt: str, response: str, max_words: int = 3) -> tuple[bool, str]:
    answer = response.strip()
    count = len(answer.split())
    if count == 0 or count > max_words:
        return False, ""
    if answer.lower().rstrip("!.") in _FILLER and not _YES_NO.match(prompt):
        return True, f"filler answer {answer!r}"
    match = _OPEN_ENDED.search(" ".join(prompt.split()[:12]))
    if match:
        return True, f"{count}-word answer to an open-ended request ({match.group(0)!r})"
    return False, ""


def is_truncated(response: str) -> tuple[bool, str]:
    """Signs that an answer was cut off (see the module docstring), with the sign found.

    Short answers without final punctuation (``"18"``, ``"Austin"``) are *not* truncated.
    """
    text = response.rstrip()
    if not text:
        return False, ""
    if text.count("```") % 2 == 1:
        return True, "unclosed code fence"
    if text.lower().endswith(("[truncated]", "<truncated>")):
        return True, "truncation marker"
    if text.endswith(_DANGLING) and not text.endswith("--"):
        return True, f"ends with {text[-1]!r}"
    last_word = re.findall(r"\w+", text[-30:].lower())
    if last_word and last_word[-1] in _DANGLING_WORDS and not text.endswith(_TERMINAL):
        return True, f"ends with the word {last_word[-1]!r}"
    if text.endswith(_TERMINAL) or len(text.split()) < 12:
        return False, ""
    last_line = text.splitlines()[-1]
    if _LISTLIKE.match(last_line) or last_line.lstrip().startswith("####"):
        return False, ""
    ends = list(_SENTENCE_END.finditer(last_line))
    tail = last_line[ends[-1].end():] if ends else last_line
    tail_words = len(tail.split())
    # the writer ends sentences with punctuation (earlier in this line, or on every earlier prose line),
    # so a long final sentence without an end was cut; answers that never punctuate are not judged
    earlier = [line for line in text.splitlines()[:-1] if len(line.split()) >= 6 and not _LISTLIKE.match(line)]
    punctuates = bool(ends) or (len(earlier) >= 2 and all(line.rstrip().endswith(_TERMINAL) for line in earlier))
    if tail_words >= 6 and punctuates:
        return True, f"last sentence has no end ({tail_words} words: …{' '.join(tail.split()[-4:])!r})"
    return False, ""


def unrelated_answers(prompts: list[str], responses: list[str], min_words: int = 8, min_prompt_words: int = 4,
                      min_other_similarity: float = 0.15, max_own_similarity: float = 0.05, min_shared: int = 2) -> dict[int, tuple[int, float]]:
    """``{i: (j, cosine)}``: answer ``i`` barely relates to prompt ``i`` (cosine < ``max_own_similarity``) but fits prompt ``j ≠ i``.

    Cosines are TF-IDF over content words (fitted on prompts and answers together); ``j`` must
    also share at least 2 content words with the answer.
    """
    from trainwise.data.sft.decontam import tfidf_vectors

    prompt_words = [sorted(content_words(p)) for p in prompts]
    answer_words = [sorted(content_words(r)) for r in responses]
    vectors = [{t: w for t, w in v.items() if " " not in t} for v in tfidf_vectors(prompt_words + answer_words)]
    n = len(prompts)
    index: dict[str, list[int]] = {}
    for j, ws in enumerate(prompt_words):
        for w in ws:
            index.setdefault(w, []).append(j)
    out: dict[int, tuple[int, float]] = {}
    for i in range(n):
        if len(responses[i].split()) < min_words or len(prompt_words[i]) < min_prompt_words:
            continue
        own = sum(v * vectors[i].get(t, 0.0) for t, v in vectors[n + i].items())
        if own >= max_own_similarity:
            continue
        shared: dict[int, int] = {}
        for w in answer_words[i]:
            for j in index.get(w, ()):
                shared[j] = shared.get(j, 0) + 1
        best = None
        for j, count in shared.items():
            if j == i or count < min_shared:
                continue
            a, b = vectors[n + i], vectors[j]
            cos = sum(v * b.get(t, 0.0) for t, v in a.items())
            if cos >= max(min_other_similarity, 3 * own) and (best is None or cos > best[1]):
                best = (j, cos)
        if best is not None:
            out[i] = best
    return out
