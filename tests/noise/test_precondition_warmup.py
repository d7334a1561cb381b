"""Adam's second moments of the first steps are no preconditioner: the noise readers wait for them to settle."""

import torch

from trainwise.noise import NoiseScaleMonitor
from trainwise.noise._params import PRECONDITIONER_MIN_STEPS, adam_preconditioner
from trainwise.tasks import get_task


def _train(steps):
    task = get_task("char-gpt", n_layer=1, n_embd=32, block_size=16)
    model = task.make_model(seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.95))
    monitor = NoiseScaleMonitor(model, source="per_example", optimizer=opt, precondition=True, ema_steps=20)
    stream = task.batches(16, seed=0)
    records = []
    for _ in range(steps):
        opt.zero_grad()
        task.loss_fn(model, next(stream)).mean().backward()
        records.append(monitor.step(batch_size=16))
        opt.step()
    monitor.close()
    return records, opt, model


def test_preconditioned_reading_starts_after_the_warm_up_and_tracks_the_per_step_values():
    records, opt, model = _train(PRECONDITIONER_MIN_STEPS + 60)
    params = list({id(p): p for p in model.parameters()}.values())
    assert adam_preconditioner(opt, params, min_steps=PRECONDITIONER_MIN_STEPS) is not None
    # no preconditioned record while v̂ holds fewer than PRECONDITIONER_MIN_STEPS squared gradients
    assert all("precond" not in r for r in records[:PRECONDITIONER_MIN_STEPS])
    assert all("precond" in r for r in records[PRECONDITIONER_MIN_STEPS:])
    # the moving averages follow the recent per-step estimates instead of staying frozen at an early outlier:
    # the ratio of the EMAs at the end is within 3× of the ratio of the plain means over the last 40 steps
    last = [r["precond"] for r in records[-40:]]
    recent = sum(p["trace_sigma"] for p in last) / sum(p["grad_sq_norm"] for p in last)
    final = records[-1]["precond"]["b_simple"]
    assert recent / 3 < final < 3 * recent, (final, recent)
    # and the largest per-step |P⁻¹G|² after the warm-up is within 100× of the median (at step 2 it was ~10⁵×)
    norms = sorted(p["grad_sq_norm"] for p in (r["precond"] for r in records[PRECONDITIONER_MIN_STEPS:]))
    assert norms[-1] < 100 * norms[len(norms) // 2]
