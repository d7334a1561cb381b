import torch

from trainwise.tasks import get_task


def test_char_gpt_per_example_loss_and_training_progress():
    task = get_task("char-gpt", n_layer=1, n_embd=32)
    model = task.make_model(seed=0)
    batch = next(task.batches(8, seed=0))
    losses = task.loss_fn(model, batch)
    assert losses.shape == (8,)
    # untrained model: loss close to log(vocab)
    assert abs(task.eval_loss(model) - torch.log(torch.tensor(float(len(task.chars))))) < 0.3
    opt = task.make_optimizer(model)
    stream = task.batches(16, seed=1)
    start = task.eval_loss(model)
    for _ in range(60):
        loss = task.loss_fn(model, next(stream)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert task.eval_loss(model) < start - 0.5
    # tied LM head: one parameter object
    assert model.lm_head.weight is model.wte.weight


def test_batches_are_seeded():
    task = get_task("digits-mlp")
    a = next(task.batches(4, seed=3))
    b = next(task.batches(4, seed=3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_unknown_task_names_choices():
    import pytest

    with pytest.raises(ValueError, match="char-gpt"):
        get_task("nope")
