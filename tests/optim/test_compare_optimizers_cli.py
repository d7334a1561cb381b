import json

import pytest

from trainwise.cli.main import main


def test_json_output_and_png(tmp_path, capsys):
    rc = main(["compare-optimizers", "--task", "digits-mlp", "--steps", "30", "--eval-every", "10",
               "--json", "--no-progress", "--out", str(tmp_path)])
    assert rc == 0
    payload = json.loads(capsys.readouterr().out)
    names = [r["optimizer"] for r in payload["results"]]
    assert names == ["adamw", "sgd-cosine", "adamw-cosine", "sophiag"]
    for result in payload["results"]:
        steps = [p["step"] for p in result["curve"]]
        assert steps == [0, 10, 20, 30]
        times = [p["time_s"] for p in result["curve"]]
        assert times == sorted(times)
        assert result["final_val_loss"] < result["curve"][0]["val_loss"]  # every optimizer learns
    sophia = payload["results"][-1]
    assert sophia["hessian_updates"] == 3  # before steps 0, 10, 20
    assert (tmp_path / "compare-optimizers.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "results.json").read_text()) == payload


def test_table_output(capsys):
    rc = main(["compare-optimizers", "--task", "digits-mlp", "--steps", "10", "--optimizers", "adamw,sophiag",
               "--lr", "sophiag=1e-3", "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "optimizer" in out and "sophiag" in out and "win rate" in out


@pytest.mark.parametrize("argv,match", [
    (["--optimizers", "adamw,lion"], "'lion'"),
    (["--lr", "adamw=fast"], "adamw=fast"),
    (["--lr", "sgd-cosine=0.1", "--optimizers", "adamw"], "'sgd-cosine'"),
    (["--steps", "0"], "--steps"),
])
def test_bad_arguments(argv, match, capsys):
    assert main(["compare-optimizers", "--task", "digits-mlp", "--no-progress", *argv]) == 2
    assert match in capsys.readouterr().err
