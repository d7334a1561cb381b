"""The plain-loop helper: records against an independent two-micro-batch computation, LR factor, resume."""

import copy
import math

import pytest
import torch

from trainwise.adapt import BatchSizeController
from trainwise.integrations.logging import JsonlSink, Sinks, TensorBoardSink, scalars_of
from trainwise.integrations.torchrun import AdaptiveBatchLoop, micro_batch_sizes, scale_lr_for_next_step
from trainwise.tasks import get_task


@pytest.fixture(scope="module")
def task():
    return get_task("digits-mlp")


def _flat_grad(model, loss):
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return torch.cat([g.reshape(-1) for g in grads])


def test_records_match_an_independent_two_micro_batch_reference(task):
    model = task.make_model(seed=0).double()
    reference = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # parameters stay put: every step is comparable
    loop = AdaptiveBatchLoop(model, optimizer, micro_batch_size=8, accumulation_steps=2, ema_steps=3)
    generator = torch.Generator().manual_seed(3)
    batches = [task.sample_batch(8, generator) for _ in range(6)]
    feed = iter(batches)
    records = [loop.step(lambda b: next(feed), lambda m, batch: task.loss_fn(m, (batch[0].double(), batch[1])))["record"]
               for _ in range(3)]
    for step, record in enumerate(records):
        g1, g2 = (_flat_grad(reference, task.loss_fn(reference, (x.double(), y)).mean())
                  for x, y in batches[2 * step: 2 * step + 2])
        small = 0.5 * (g1.pow(2).sum() + g2.pow(2).sum())  # E|G_8|²
        big = ((g1 + g2) / 2).pow(2).sum()  # |G_16|²
        grad_sq = (16 * big - 8 * small) / (16 - 8)
        trace = (small - big) / (1 / 8 - 1 / 16)
        assert record["grad_sq_norm"] == pytest.approx(float(grad_sq), rel=1e-9)
        assert record["trace_sigma"] == pytest.approx(float(trace), rel=1e-9)
        assert record["batch_size"] == 16 and record["b_small"] == 8


def test_single_micro_batch_is_split_in_two_for_measurement():
    from trainwise.adapt import BatchPlan

    assert micro_batch_sizes(BatchPlan(9, 9, 1), split_single=True) == [5, 4]
    assert micro_batch_sizes(BatchPlan(9, 9, 1), split_single=False) == [9]
    assert micro_batch_sizes(BatchPlan(24, 8, 3), split_single=True) == [8, 8, 8]


def test_lr_factor_applies_to_the_step_only(task):
    model = task.make_model(seed=0).double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    controller = BatchSizeController(4, min_batch_size=8, max_micro_batch_size=8, max_batch_size=8, lr_rule="sgd")
    loop = AdaptiveBatchLoop(model, optimizer, controller)
    before = [p.detach().clone() for p in model.parameters()]
    generator = torch.Generator().manual_seed(0)
    out = loop.step(lambda b: task.sample_batch(b, generator), lambda m, batch: task.loss_fn(m, (batch[0].double(), batch[1])))
    phi = loop.monitor.b_simple  # measured on this step, before the optimizer step
    assert out["lr_factor"] == pytest.approx(2 * (phi + 4) / (phi + 8))  # AdaScale gain at s = 8/4
    assert 1.0 < out["lr_factor"] < 2.0
    for p0, p in zip(before, model.parameters()):
        torch.testing.assert_close(p0 - p, 0.1 * out["lr_factor"] * p.grad)
    assert optimizer.param_groups[0]["lr"] == 0.1
    assert controller.lr_factor() == pytest.approx(out["lr_factor"])


def test_scale_lr_for_next_step_restores_after_the_step():
    param = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([param], lr=0.5)
    scale_lr_for_next_step(optimizer, 3.0)
    assert optimizer.param_groups[0]["lr"] == 1.5
    param.grad = torch.ones(2)
    optimizer.step()
    assert optimizer.param_groups[0]["lr"] == 0.5
    torch.testing.assert_close(param.detach(), torch.full((2,), -0.5))
    optimizer.step()  # the hook removed itself
    assert optimizer.param_groups[0]["lr"] == 0.5
    with pytest.raises(ValueError, match="LR factor must be finite and > 0, got nan"):
        scale_lr_for_next_step(optimizer, math.nan)


def _make(task, log_dir=None):
    model = task.make_model(seed=0).double()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    controller = BatchSizeController(8, max_micro_batch_size=8, max_batch_size=64, noise_fraction=20.0,
                                     update_interval=2)
    return model, optimizer, AdaptiveBatchLoop(model, optimizer, controller, ema_steps=4, log_dir=log_dir)


def _run(task, loop, generator, steps):
    loss_fn = lambda m, batch: task.loss_fn(m, (batch[0].double(), batch[1]))  # noqa: E731
    return [loop.step(lambda b: task.sample_batch(b, generator), loss_fn) for _ in range(steps)]


def test_resume_continues_exactly(task, tmp_path):
    _, _, straight = _make(task)
    generator = torch.Generator().manual_seed(5)
    full = _run(task, straight, generator, 10)

    model, optimizer, first = _make(task, log_dir=tmp_path)
    generator = torch.Generator().manual_seed(5)
    _run(task, first, generator, 6)
    checkpoint = {"model": copy.deepcopy(model.state_dict()), "optimizer": copy.deepcopy(optimizer.state_dict()),
                  "loop": copy.deepcopy(first.state_dict()), "rng": generator.get_state()}
    model2, optimizer2, second = _make(task)
    model2.load_state_dict(checkpoint["model"])
    optimizer2.load_state_dict(checkpoint["optimizer"])
    second.load_state_dict(checkpoint["loop"])
    generator2 = torch.Generator()
    generator2.set_state(checkpoint["rng"])
    rest = _run(task, second, generator2, 4)
    assert [o["plan"] for o in rest] == [o["plan"] for o in full[6:]]
    for got, want in zip(rest, full[6:]):
        assert got["record"] == want["record"]
        assert got["decision"] == want["decision"]
    assert full[-1]["plan"].batch_size > 8  # the batch changed within the run
    assert (tmp_path / "noise.jsonl").exists() and (tmp_path / "adapt.jsonl").exists()


class _FakeWriter:
    def __init__(self):
        self.scalars = []

    def add_scalar(self, tag, value, global_step):
        self.scalars.append((tag, value, global_step))

    def flush(self):
        pass


def test_sinks(tmp_path):
    record = {"kind": "step", "step": 3, "b_simple": 12.5, "lr": None, "precond": {"b_simple": 4.0}, "flag": True}
    assert scalars_of(record) == {"trainwise/b_simple": 12.5, "trainwise/precond/b_simple": 4.0}
    writer = _FakeWriter()
    sinks = Sinks([TensorBoardSink(writer=writer), JsonlSink(tmp_path / "x.jsonl")])
    sinks.write(record)
    sinks.write({"kind": "batch_decision", "step": 4, "batch_size": 32, "reason": "why"})
    sinks.write({"kind": "meta", "step": 0, "x": 1.0})  # not a TensorBoard kind
    sinks.write(None)
    assert ("trainwise/b_simple", 12.5, 3) in writer.scalars
    assert ("trainwise/batch_decision/batch_size", 32.0, 4) in writer.scalars
    assert len((tmp_path / "x.jsonl").read_text().splitlines()) == 3
    Sinks([JsonlSink(tmp_path / "y.jsonl")], enabled=False).write(record)  # other ranks write nothing
    assert not (tmp_path / "y.jsonl").exists()


def test_real_tensorboard_writer(tmp_path):
    pytest.importorskip("tensorboard")
    sink = TensorBoardSink(tmp_path / "tb")
    sink.write({"kind": "step", "step": 1, "b_simple": 3.0})
    sink.close()
    assert any((tmp_path / "tb").glob("events.out.tfevents.*"))
