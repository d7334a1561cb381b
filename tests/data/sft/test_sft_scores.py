import math

import numpy as np
import pytest
import torch

from trainwise.data.sft.scores import heuristic_scores, ifd_scores
from trainwise.tasks.char_gpt import CharGPT, GPT, GPTConfig, builtin_text


def _reference_ifd(model, tokenizer, prompt, response, bos):
    """Unbatched, unpadded, token-by-token reference for s(A|Q)/s(A)."""
    q, a = tokenizer(prompt), tokenizer(response)

    def mean_loss(context, answer, skip_first):
        seq = torch.tensor([context + answer])
        with torch.no_grad():
            logp = torch.log_softmax(model(seq)[0].double(), dim=-1)
        losses = [-float(logp[len(context) + i - 1, answer[i]]) for i in range(len(answer)) if len(context) + i >= 1]
        return float(np.mean(losses[1:] if skip_first else losses))

    if bos is None:
        return mean_loss(q, a, skip_first=True) / mean_loss([], a, skip_first=False)
    return mean_loss([bos] + q, a, False) / mean_loss([bos], a, False)


@pytest.fixture(scope="module")
def char_model():
    """A small GPT built from a config, trained briefly on the built-in text (no downloads)."""
    torch.manual_seed(0)
    task = CharGPT(n_layer=1, n_embd=32, block_size=64)
    model = task.make_model(seed=0)
    optimizer = task.make_optimizer(model)
    stream = task.batches(32, seed=1)
    for _ in range(120):
        loss = task.loss_fn(model, next(stream)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return task, model


def test_uniform_model_has_ifd_one():
    vocab = 11
    model = lambda ids: torch.zeros(*ids.shape, vocab)  # noqa: E731 - every token has probability 1/V
    tokenizer = lambda s: [ord(c) % vocab for c in s]  # noqa: E731
    result = ifd_scores(model, tokenizer, ["abc", "hello there"], ["xyz!", "ok go"])
    assert np.allclose(result.ifd, 1.0)
    assert np.allclose(result.conditioned_loss, math.log(vocab))
    assert result.answer_tokens.tolist() == [3, 4]  # a_2..a_n without BOS


@pytest.mark.parametrize("bos", [None, 0])
def test_batched_matches_unbatched_reference(bos):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, block_size=48, n_layer=1, n_head=2, n_embd=16)).eval()
    tokenizer = lambda s: [1 + (ord(c) % 19) for c in s]  # noqa: E731
    prompts = ["a", "the cat sat on", "xy", "a much longer prompt than the others here"]
    responses = ["qq", "the mat", "zzzzzzzzz", "ok"]
    result = ifd_scores(model, tokenizer, prompts, responses, bos_token_id=bos, batch_size=3)
    expected = [_reference_ifd(model, tokenizer, p, r, bos) for p, r in zip(prompts, responses)]
    assert result.ifd == pytest.approx(expected, rel=1e-5)


def test_max_length_keeps_the_end_of_the_prompt():
    vocab = 7
    seen = []

    def model(ids):
        seen.append(ids.shape[1])
        return torch.zeros(*ids.shape, vocab)

    result = ifd_scores(model, lambda s: [1] * len(s), ["p" * 100], ["a" * 10], max_length=16)
    assert max(seen) == 16 and result.answer_tokens.tolist() == [9]


def test_ifd_trained_char_gpt_instruction_helps(char_model):
    task, model = char_model
    text = builtin_text()
    rng = np.random.default_rng(0)
    starts = rng.integers(0, len(text) - 100, size=64)
    prompts = [text[s : s + 40] for s in starts]
    answers = [text[s + 40 : s + 52] for s in starts]
    tokenizer = lambda s: [task.stoi[c] for c in s]  # noqa: E731
    newline = task.stoi["\n"]  # documents start after a newline: the BOS of this corpus
    matched = ifd_scores(model, tokenizer, prompts, answers, max_length=64, bos_token_id=newline)
    mismatched = ifd_scores(model, tokenizer, prompts[1:] + prompts[:1], answers, max_length=64, bos_token_id=newline)
    assert np.all(np.isfinite(matched.ifd))
    # the true preceding text lowers the answer's loss: IFD < 1 on average, and below a mismatched prompt's
    assert matched.ifd.mean() < 0.98
    assert matched.ifd.mean() < mismatched.ifd.mean() - 0.015
    assert np.mean(matched.ifd < mismatched.ifd) > 0.6
    # the conditioned loss never needs the prompt to be *worse* on average than the model's eval loss + margin
    assert matched.conditioned_loss.mean() < task.eval_loss(model) + 0.5


def test_heuristic_scores():
    good = heuristic_scores("Explain photosynthesis in two sentences.", "Plants turn light, water and carbon dioxide into sugar. Oxygen is released as a by-product.")
    repetitive = heuristic_scores("Explain it", "the same thing the same thing the same thing the same thing the same thing")
    refusal = heuristic_scores("Write code", "I'm sorry, but as an AI language model I cannot help with that request today.")
    truncated = heuristic_scores("Write code", "Here is the code:\n```python\nprint('hi')\n")
    assert good.quality > 0.8
    assert repetitive.repetition > 0.5 and repetitive.quality < 0.5 * good.quality
    assert refusal.refusal and refusal.quality < 0.3
    assert truncated.truncated and truncated.quality < 0.5
    assert heuristic_scores("List each step, then explain and format it as a table", "x").complexity > good.complexity
