import json

import pytest

from trainwise.cli.main import main


@pytest.mark.parametrize("source", ["per_example", "accumulation"])
def test_measure_writes_json_log_and_plot(tmp_path, capsys, source):
    out = tmp_path / "run"
    code = main(["measure", "--task", "digits-mlp", "--steps", "12", "--checkpoints", "2", "--rounds", "3",
                 "--source", source, "--out", str(out), "--json", "--quiet", "--batch-size", "16"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert [c["step"] for c in result["checkpoints"]] == [0, 12]
    assert result["checkpoints"][1]["examples"] == 12 * 16
    for name in ("b_simple", "b_noise", "eps_max"):
        assert result["checkpoints"][1][name]["value"] is not None
    assert {k: result["summary"]["window"][k] for k in ("first_step", "last_step", "checkpoints")} == \
        {"first_step": 12, "last_step": 12, "checkpoints": 1}
    assert len(result["steps"]) == 12
    lines = [json.loads(line) for line in (out / "noise.jsonl").read_text().splitlines()]
    assert lines[0]["kind"] == "meta" and lines[0]["source"] == source and lines[0]["task"] == "digits-mlp"
    assert sum(line["kind"] == "step" for line in lines) == 12
    assert sum(line["kind"] == "hessian" for line in lines) == 2
    assert (out / "noise_scale.png").stat().st_size > 10_000
    assert json.loads((out / "measure.json").read_text())["files"]["plot"].endswith("noise_scale.png")


def test_measure_table_output(tmp_path, capsys):
    assert main(["measure", "--task", "digits-mlp", "--steps", "4", "--checkpoints", "2", "--rounds", "2",
                 "--out", str(tmp_path), "--quiet", "--no-plot"]) == 0
    text = capsys.readouterr().out
    assert "B_noise" in text and "window steps 4–4" in text and "noise.jsonl" in text


def test_measure_rejects_bad_arguments(tmp_path, capsys):
    assert main(["measure", "--task", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err
    assert main(["measure", "--task", "digits-mlp", "--source", "accumulation", "--micro-batches", "3",
                 "--batch-size", "16", "--out", str(tmp_path)]) == 2
    assert "--micro-batches" in capsys.readouterr().err


TASK_FILE = '''"""A user's own task: noisy linear regression, 30 lines, nothing built in."""
import torch
from torch import nn
from trainwise.tasks import Task


class MyRegression(Task):
    name = "my-regression"
    default_lr = 0.05
    default_batch_size = 16
    default_optimizer = "sgd"

    def __init__(self, device="cpu"):
        super().__init__(device)
        g = torch.Generator().manual_seed(0)
        self.w = torch.randn(6, 1, generator=g)
        self.x_test = torch.randn(256, 6, generator=g)
        self.y_test = self.x_test @ self.w + 0.5 * torch.randn(256, 1, generator=g)

    def make_model(self, seed=0):
        torch.manual_seed(seed)
        return nn.Linear(6, 1)

    def loss_fn(self, model, batch):
        x, y = batch
        return ((model(x) - y) ** 2).squeeze(1)  # per-example losses, shape [B]

    def num_train_examples(self):
        return 10**9  # fresh data every draw

    def sample_batch(self, batch_size, generator, split="train"):
        x = torch.randn(batch_size, 6, generator=generator)
        return x, x @ self.w + 0.5 * torch.randn(batch_size, 1, generator=generator)

    def eval_batches(self):
        return [(self.x_test, self.y_test)]
'''


def test_measure_then_plan_on_a_users_task_file(tmp_path, capsys):
    task_file = tmp_path / "my_task.py"
    task_file.write_text(TASK_FILE)
    out = tmp_path / "run"
    assert main(["measure", "--task", str(task_file), "--steps", "30", "--checkpoints", "3", "--rel-err", "0.2",
                 "--max-rounds", "64", "--out", str(out), "--quiet", "--no-plot"]) == 0
    text = capsys.readouterr().out
    assert "my-regression" in text and "critical batch B_crit" in text and "not resolved" not in text.split("window")[1]
    result = json.loads((out / "measure.json").read_text())
    assert result["meta"]["rounds"] is None and result["meta"]["rel_err"] == 0.2
    # each checkpoint after the start stopped on the precision asked for, or the cap
    assert all(c["stopped"] in ("precision", "max_rounds") for c in result["checkpoints"])
    assert main(["plan", "--from", str(out), "--optimizer", "sgd"]) == 0
    assert "Recommended learning rate" in capsys.readouterr().out
    assert main(["compare-optimizers", "--task", str(task_file), "--optimizers", "adamw,sgd-cosine", "--steps", "5",
                 "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["task"] == "my-regression"
