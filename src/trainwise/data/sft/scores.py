"""Quality and difficulty scores for instruction examples.

Heuristics (no model): lengths, lexical diversity of the answer, repetition, refusal boilerplate,
truncation, and an instruction-complexity proxy. They combine into ``quality`` ∈ [0, 1] and
``complexity`` ≥ 0, the two factors of a Deita-style ``score = complexity × quality``.

IFD, Instruction-Following Difficulty (Li et al. 2024, "From Quantity to Quality", Cherry LLM,
arXiv:2308.12032), for an instruction ``Q`` and answer ``A = (a_1..a_n)`` under a causal LM ``θ``::

    s_θ(A | Q) = −(1/n) Σ_i log P_θ(a_i | Q, a_<i)      (conditioned answer loss)
    s_θ(A)     = −(1/n) Σ_i log P_θ(a_i | a_<i)         (direct answer loss)
    IFD_θ(Q, A) = s_θ(A | Q) / s_θ(A)

IFD near or above 1 means the instruction does not help the model produce the answer (hard, or
the pair is mismatched); IFD well below 1 means the answer follows easily from the instruction.
Cherry LLM keeps high-IFD examples but drops IFD > 1 as misaligned pairs.

Without a beginning-of-sequence token the first answer token has no context in ``s(A)``, so both
losses are then averaged over ``a_2..a_n`` (the same tokens); with ``bos_token_id`` all ``n``
tokens are scored and ``s(A)`` is conditioned on BOS alone.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from trainwise.data.sft._text import word_ngrams, words
from trainwise.data.sft.quality import is_refusal, is_truncated

__all__ = ["heuristic_scores", "HeuristicScores", "ifd_scores", "IFDResult", "answer_losses", "load_hf_causal_lm"]

_CONSTRAINT = re.compile(r"\b(must|should|without|at least|at most|exactly|only|each|every|step by step|format|list|then|and)\b", re.I)


@dataclass
class HeuristicScores:
    prompt_words: int
    response_words: int
    #: distinct / total words of the answer (moving-average TTR over 50-word windows, length-robust)
    lexical_diversity: float
    #: fraction of the answer's word 3-grams that repeat an earlier 3-gram
    repetition: float
    refusal: bool
    truncated: bool
    #: log(1 + prompt words) + 0.5 × number of constraint markers in the prompt
    complexity: float
    #: product of soft penalties in [0, 1]
    quality: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _mattr(tokens: list[str], window: int = 50) -> float:
    """Moving-average type-token ratio (Covington & McFall 2010): TTR averaged over sliding windows."""
    if not tokens:
        return 0.0
    if len(tokens) <= window:
        return len(set(tokens)) / len(tokens)
    ratios = [len(set(tokens[i : i + window])) / window for i in range(0, len(tokens) - window + 1, max(1, window // 5))]
    return float(np.mean(ratios))


def heuristic_scores(prompt: str, response: str) -> HeuristicScores:
    """Model-free scores of one example; see :class:`HeuristicScores`.

    ``quality = min(1, n_words/5) · (1 − repetition) · (0.2 if refusal) · (0.3 if truncated) · min(1, 2·MATTR)``
    """
    prompt_tokens, response_tokens = words(prompt), words(response)
    trigrams = word_ngrams(response_tokens, 3) if len(response_tokens) >= 3 else []
    repetition = 1.0 - len(set(trigrams)) / len(trigrams) if trigrams else 0.0
    lexical = _mattr(response_tokens)
    refusal = is_refusal(response)[0]
    truncated = is_truncated(response)[0]
    complexity = math.log1p(len(prompt_tokens)) + 0.5 * len(_CONSTRAINT.findall(prompt))
    quality = min(1.0, len(response_tokens) / 5.0) * (1.0 - repetition) * min(1.0, 2.0 * lexical)
    quality *= 0.2 if refusal else 1.0
    quality *= 0.3 if truncated else 1.0
    return HeuristicScores(len(prompt_tokens), len(response_tokens), lexical, repetition, refusal, truncated, complexity, quality)


@dataclass
class IFDResult:
    conditioned_loss: np.ndarray  # s(A|Q), nats per answer token, [N]
    direct_loss: np.ndarray  # s(A), [N]
    ifd: np.ndarray  # s(A|Q)/s(A), [N]; NaN where the answer has no scorable token
    answer_tokens: np.ndarray  # tokens averaged over, [N]


def _encode(tokenizer: Callable[[str], Any], text: str) -> list[int]:
    out = tokenizer(text)
    if isinstance(out, dict) or hasattr(out, "keys"):
        out = out["input_ids"]
    if hasattr(out, "tolist"):
        out = out.tolist()
    if out and isinstance(out[0], list):  # batched encoders
        out = out[0]
    return [int(t) for t in out]


def _logits(model: Callable[..., Any], ids):
    out = model(ids)
    if hasattr(out, "logits"):  # Hugging Face ModelOutput
        out = out.logits
    elif isinstance(out, tuple):
        out = out[0]
    if out.dim() != 3 or out.shape[:2] != ids.shape:
        raise ValueError(f"model must map token ids [B, T] to logits [B, T, V]; got {tuple(out.shape)} for input {tuple(ids.shape)}")
    return out


def answer_losses(
    model: Callable[..., Any],
    sequences: Sequence[Sequence[int]],
    answer_starts: Sequence[int],
    batch_size: int = 16,
    device: Any = None,
    pad_id: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean next-token loss over positions ``>= answer_start`` of each sequence, and their counts.

    Sequences are right-padded, so causal attention leaves the real tokens' logits unchanged.
    """
    import torch
    import torch.nn.functional as F

    if len(sequences) != len(answer_starts):
        raise ValueError(f"{len(sequences)} sequences but {len(answer_starts)} answer starts")
    losses = np.full(len(sequences), np.nan)
    counts = np.zeros(len(sequences), dtype=np.int64)
    order = np.argsort([len(s) for s in sequences])  # batch similar lengths together
    for start in range(0, len(order), batch_size):
        batch_ids = order[start : start + batch_size]
        length = max(len(sequences[i]) for i in batch_ids)
        ids = torch.full((len(batch_ids), length), pad_id, dtype=torch.long)
        target_mask = torch.zeros((len(batch_ids), length), dtype=torch.bool)
        for row, i in enumerate(batch_ids):
            seq = sequences[i]
            ids[row, : len(seq)] = torch.tensor(list(seq), dtype=torch.long)
            # token t is predicted from position t-1; score tokens t >= max(answer_start, 1)
            target_mask[row, max(answer_starts[i], 1) : len(seq)] = True
        if device is not None:
            ids, target_mask = ids.to(device), target_mask.to(device)
        with torch.no_grad():
            logits = _logits(model, ids).float()  # [B, T, V]
        token_loss = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")  # [B, T-1]
        mask = target_mask[:, 1:]
        summed = (token_loss * mask).sum(dim=1)
        count = mask.sum(dim=1)
        for row, i in enumerate(batch_ids):
            counts[i] = int(count[row])
            if counts[i] > 0:
                losses[i] = float(summed[row] / count[row])
    return losses, counts


def ifd_scores(
    model: Callable[..., Any],
    tokenizer: Callable[[str], Any],
    prompts: Sequence[str],
    responses: Sequence[str],
    max_length: int | None = None,
    bos_token_id: int | None = None,
    batch_size: int = 16,
    device: Any = None,
    pad_id: int = 0,
) -> IFDResult:
    """IFD of each (prompt, response) pair with any causal LM.

    ``model``: a callable / ``nn.Module`` mapping token ids ``[B, T]`` to logits ``[B, T, V]`` (a
    Hugging Face model's ``.logits`` output works too). ``tokenizer``: ``str -> list[int]`` (or a
    Hugging Face tokenizer; pass ``add_special_tokens=False`` via a lambda if it adds BOS itself).
    ``max_length``: the model's context; the answer is cut to fit and the prompt keeps its *last*
    tokens (the ones next to the answer). Put the model in ``eval()`` mode first.
    """
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    if max_length is not None and max_length < 2:
        raise ValueError(f"max_length must be >= 2, got {max_length!r}")
    prefix = [bos_token_id] if bos_token_id is not None else []
    conditioned_seqs, conditioned_starts, direct_seqs, direct_starts = [], [], [], []
    for prompt, response in zip(prompts, responses):
        q, a = _encode(tokenizer, prompt), _encode(tokenizer, response)
        if max_length is not None:
            a = a[: max_length - len(prefix) - 1]
            room = max_length - len(prefix) - len(a)
            q = q[-room:] if room > 0 else []
        if bos_token_id is None:
            # score a_2..a_n in both, so s(A|Q) and s(A) average the same tokens
            conditioned_seqs.append(q + a)
            conditioned_starts.append(len(q) + 1)
            direct_seqs.append(a)
            direct_starts.append(1)
        else:
            conditioned_seqs.append(prefix + q + a)
            conditioned_starts.append(1 + len(q))
            direct_seqs.append(prefix + a)
            direct_starts.append(1)
    conditioned, counts = answer_losses(model, conditioned_seqs, conditioned_starts, batch_size, device, pad_id)
    direct, _ = answer_losses(model, direct_seqs, direct_starts, batch_size, device, pad_id)
    with np.errstate(divide="ignore", invalid="ignore"):
        ifd = np.where(direct > 0, conditioned / direct, np.nan)
    return IFDResult(conditioned_loss=conditioned, direct_loss=direct, ifd=ifd, answer_tokens=counts)


def load_hf_causal_lm(path: str, device: str = "cpu") -> tuple[Any, Callable[[str], list[int]], int | None, int | None]:
    """A local Hugging Face causal LM for IFD: ``(model, tokenizer, bos_token_id, max_length)``.

    Reads only the directory ``path`` (``local_files_only=True``: nothing is downloaded). The
    tokenizer callable adds no special tokens; BOS is passed to :func:`ifd_scores` separately.
    """
    from trainwise._optional import require

    transformers = require("transformers", extra="hf", purpose="IFD with a Hugging Face causal LM")
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(path, local_files_only=True).to(device).eval()
    config = model.config
    max_length = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)

    def encode(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    return model, encode, tokenizer.bos_token_id, max_length
