import json

import pytest

from trainwise.cli.main import main
from trainwise.cli.sweep import parse_batch_sizes

from tests.test_plan import write_noise_jsonl


def test_parse_batch_sizes():
    assert parse_batch_sizes("16..128") == [16, 32, 64, 128]
    assert parse_batch_sizes("4..1024x4") == [4, 16, 64, 256, 1024]
    assert parse_batch_sizes("4,8, 32") == [4, 8, 32]
    with pytest.raises(ValueError, match="'16..x'"):
        parse_batch_sizes("16..x")


def test_plan_cli_user_story(tmp_path, capsys):
    path = write_noise_jsonl(tmp_path / "noise.jsonl")
    out = tmp_path / "plan"
    assert main(["plan", "--from", str(path), "--devices", "8", "--throughput", "14000tok/s", "--tokens", "20B",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Recommended global batch" in text and "wall-clock" in text and "Llama 3 405B" in text
    assert (out / "plan.png").stat().st_size > 1000
    plan = json.loads((out / "plan.json").read_text())
    assert plan["kind"] == "plan" and plan["recommendation"]["batch_size"] > 0

    assert main(["plan", "--params", "350M", "--tokens", "20B", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["measurement"] is None and "deepseek" in data["laws"]

    assert main(["plan", "--params", "350M", "--tokens", "20 parsecs"]) == 2
    assert "20 parsecs" in capsys.readouterr().err


def test_sweep_then_report_cli(tmp_path, capsys):
    task_file = tmp_path / "my_proxy.py"
    task_file.write_text(
        "import sys\nsys.path.insert(0, %r)\nfrom linear_task import LinearRegression\n"
        "def make_task(device='cpu'):\n    return LinearRegression(device=device)\n" % str(__import__("pathlib").Path(__file__).parent / "sweep")
    )
    out = tmp_path / "sweep"
    args = ["sweep", "--task", str(task_file), "--batch-sizes", "2..32x4", "--targets", "0.4,0.3", "--lrs", "0.03,0.1",
            "--optimizer", "sgd", "--max-steps", "400", "--no-hessian", "--noise-source", "halves", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "B_crit" in text and "steps to target" in text
    assert (out / "steps_vs_batch.png").exists() and (out / "steps_vs_examples.png").exists()
    # rerun resumes: every run is already done
    assert main(args) == 0
    assert "resuming: 6 of 6 runs already done" in capsys.readouterr().out

    plan_dir = tmp_path / "plan"
    assert main(["plan", "--from", str(write_noise_jsonl(tmp_path / "noise.jsonl")), "--tokens", "1B", "--out", str(plan_dir)]) == 0
    report = tmp_path / "report.html"
    assert main(["report", str(plan_dir), str(out), "-o", str(report)]) == 0
    html = report.read_text()
    assert html.count("data:image/png;base64,") >= 3  # plan plot + two sweep plots, embedded
    assert ">Plan" in html and "Sweep" in html and "src=\"http" not in html


def test_sweep_needs_targets_for_user_tasks(tmp_path, capsys):
    task_file = tmp_path / "t.py"
    task_file.write_text("from trainwise.tasks.digits_mlp import DigitsMLP\ntask = DigitsMLP()\n")
    assert main(["sweep", "--task", str(task_file), "--out", str(tmp_path / "o")]) == 2
    assert "--targets" in capsys.readouterr().err
