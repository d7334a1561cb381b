"""HF Trainer callback and Lightning callback: refusals, LR rule, recommendations, batch growth, resume."""

import copy
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny():
    from tiny_data import char_windows, tiny_gpt2

    windows, vocab = char_windows(256, 16, seed=0)
    return tiny_gpt2(vocab, 16, seed=0)


def _first_records(tiny, tmp_path, max_grad_norm, accumulation):
    from hf_trainer import build_trainer

    trainer, callback = build_trainer(str(tmp_path / f"clip{max_grad_norm}-{accumulation}"), steps=1,
                                      accumulation=accumulation, model=copy.deepcopy(tiny))
    trainer.args.max_grad_norm = max_grad_norm
    trainer.train()
    return callback.records[0], trainer


@pytest.mark.parametrize("accumulation", [1, 2])
def test_hf_measures_before_the_trainers_own_clipping(tiny, tmp_path, accumulation):
    # a clip far below the gradient norm: measured after it, |G|² would shrink by orders of magnitude
    clipped, trainer = _first_records(tiny, tmp_path, 1e-3, accumulation)
    assert trainer.state.log_history[-1]["train_loss"] > 0
    unclipped, _ = _first_records(tiny, tmp_path, 0.0, accumulation)
    for key in ("grad_sq_norm", "trace_sigma", "b_simple", "batch_size", "b_small"):
        assert clipped[key] == pytest.approx(unclipped[key], rel=1e-12), key
    # the wrapper is gone after training: the accelerator is left as it was
    assert "clip_grad_norm_" not in trainer.accelerator.__dict__


def test_hf_b_simple_reaches_log_history_and_loggers_that_run_before_user_callbacks(tiny, tmp_path):
    from hf_trainer import build_trainer
    from transformers import TrainerCallback

    from trainwise.integrations.hf import NoiseScaleCallback

    class Logger(TrainerCallback):  # stands for a report_to integration: registered before user callbacks
        seen: list = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            self.seen.append(dict(logs))

    logger = Logger()
    callback = NoiseScaleCallback(log_dir=str(tmp_path))
    trainer, _ = build_trainer(str(tmp_path), steps=10, model=copy.deepcopy(tiny), callback=callback)
    handler = trainer.callback_handler
    handler.callbacks.remove(logger) if logger in handler.callbacks else None
    handler.callbacks.insert(handler.callbacks.index(callback), logger)  # the logger first, as integrations are
    callback.attach(trainer)  # what on_init_end did already; idempotent
    assert handler.callbacks[0] is callback
    trainer.train()
    history = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(history) == 2 and all("b_simple" in entry for entry in history)
    assert history[-1]["b_simple"] == pytest.approx(callback.monitor.b_simple)
    assert all("noise_grad_sq_norm" in entry and "noise_trace_sigma" in entry for entry in history)
    assert [e["b_simple"] for e in logger.seen if "loss" in e] == [e["b_simple"] for e in history]


def test_hf_lr_rule_recommendations_and_resume(tiny, tmp_path):
    from hf_trainer import build_trainer

    from trainwise.adapt import lr_multiplier

    # one run of 6 steps with a checkpoint at step 3, then a resumed run from that checkpoint
    trainer, callback = build_trainer(str(tmp_path / "a"), steps=6, model=copy.deepcopy(tiny), lr_rule="sgd",
                                      base_batch_size=4, save_steps=3)
    seen = []
    original_step = trainer.create_optimizer().step

    def spy(*args, **kwargs):  # the LR the optimizer really used
        seen.append(trainer.optimizer.param_groups[0]["lr"])
        return original_step(*args, **kwargs)

    trainer.optimizer.step = spy
    trainer.train()
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)  # schedule untouched
    b_simple = [r["b_simple"] for r in callback.records]
    # each step: the AdaScale gain at s = 8/4 and the B_simple measured up to that step
    assert seen == pytest.approx([1e-3 * lr_multiplier("sgd", phi, 4, 8) for phi in b_simple])
    assert all(1e-3 < lr < 2e-3 for lr in seen)
    decisions = [json.loads(x) for x in (tmp_path / "a" / "adapt.jsonl").read_text().splitlines()]
    assert decisions and all(d["applied"] is False and d["batch_size"] == 8 for d in decisions)
    assert all("recommended_batch_size" in d for d in decisions)

    resumed, _ = build_trainer(str(tmp_path / "a"), steps=6, model=copy.deepcopy(tiny), lr_rule="sgd",
                               base_batch_size=4, save_steps=3, restore=True)
    resumed.train(resume_from_checkpoint=str(tmp_path / "a" / "checkpoint-3"))
    restored = [cb for cb in resumed.callback_handler.callbacks if type(cb).__name__ == "NoiseScaleCallback"]
    assert len(restored) == 1 and restored[0].monitor.steps == 6
    assert restored[0].monitor.b_simple == pytest.approx(b_simple[-1], rel=1e-5)


def test_lightning_grows_accumulation_at_batch_boundaries(tiny, tmp_path):
    pytest.importorskip("lightning")
    from lightning_callback import build

    from trainwise.adapt import BatchSizeController

    controller = BatchSizeController(8, max_micro_batch_size=4, max_batch_size=32, lr_rule="adam",
                                     noise_fraction=100.0, update_interval=2)
    trainer, module, loader, callback = build(str(tmp_path), steps=8, controller=controller, model=copy.deepcopy(tiny))
    trainer.callbacks.append(callback)
    trainer.fit(module, loader)
    sizes = [r["batch_size"] for r in callback.records]
    assert sizes[0] == 8 and sizes[-1] > 8, sizes
    assert all(size % 4 == 0 for size in sizes)
    assert sizes == sorted(sizes)  # grows only, every step had exactly k micro-batches of 4
    assert callback.applied and trainer.accumulate_grad_batches == callback.applied[-1][1]
    state = json.loads(json.dumps(callback.state_dict()))
    assert state["controller"]["plan"]["batch_size"] == controller.batch_size


def test_hf_per_example_source_without_accumulation_and_example_main(tiny, tmp_path, capsys):
    from hf_trainer import build_trainer, main

    from trainwise.integrations.hf import NoiseScaleCallback

    # stock GPT-2 (position ids broadcast over the batch), every parameter
    callback = NoiseScaleCallback(log_dir=str(tmp_path / "pe"))
    trainer, callback = build_trainer(str(tmp_path / "pe"), steps=2, accumulation=1, model=copy.deepcopy(tiny),
                                      callback=callback)
    trainer.train()
    assert callback.monitor.source == "per_example"
    assert [r["b_small"] for r in callback.records] == [1.0, 1.0]
    assert all(r["batch_size"] == 4 for r in callback.records)
    main(["--out", str(tmp_path / "main"), "--steps", "5"])
    assert "B_simple in log_history: " in capsys.readouterr().out
    assert (tmp_path / "main" / "noise.jsonl").exists()


def test_lightning_state_restores_batch_and_monitor(tiny, tmp_path):
    pytest.importorskip("lightning")
    from lightning_callback import build

    from trainwise.adapt import BatchSizeController

    def controller():
        return BatchSizeController(8, max_micro_batch_size=4, max_batch_size=32, noise_fraction=100.0, update_interval=2)

    trainer, module, loader, first = build(str(tmp_path / "1"), steps=8, controller=controller(), model=copy.deepcopy(tiny))
    trainer.callbacks.append(first)
    trainer.fit(module, loader)
    state = json.loads(json.dumps(first.state_dict()))
    trainer, module, loader, second = build(str(tmp_path / "2"), steps=2, controller=controller(), model=copy.deepcopy(tiny))
    second.load_state_dict(state)
    trainer.callbacks.append(second)
    trainer.fit(module, loader)
    assert trainer.accumulate_grad_batches == first.controller.accumulation_steps
    assert second.records[0]["batch_size"] == first.controller.batch_size
    assert second.records[0]["step"] == first.monitor.steps + 1
