import pytest

from trainwise.sweep import BranchedConfig, run_branched

from .linear_task import LinearRegression


def test_branched_reports_largest_batch_keeping_up(tmp_path):
    task = LinearRegression()
    config = BranchedConfig(task="linreg", base_batch=2, base_lr=0.01, checkpoint_steps=[0, 30],
                            multipliers=[1, 4, 64], branch_examples=256, tolerance=0.05, lr_rule="constant",
                            optimizer="sgd")
    result = run_branched(task, config, tmp_path)
    assert [c["step"] for c in result["checkpoints"]] == [0, 30]
    first = result["checkpoints"][0]
    assert [b["batch_size"] for b in first["branches"]] == [2, 8, 128]
    # 256 examples at batch 128 is 2 steps at the same LR: it cannot keep up from the initialisation
    assert first["branches"][2]["loss"] > first["reference_loss"] + 0.05
    assert first["b_crit"] in (2, 8)
    # resumable: the same call reads the state file
    again = run_branched(task, config, tmp_path)
    assert again["checkpoints"] == result["checkpoints"]
    with pytest.raises(ValueError, match="multipliers must include 1"):
        BranchedConfig(task="x", base_batch=2, base_lr=0.1, checkpoint_steps=[0], multipliers=[2, 4])
