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
