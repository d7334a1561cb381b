"""`trainwise data sft FOLDER`: a folder of files in different formats runs as it is, one task per file."""

import json

from trainwise.cli.main import main
from trainwise.data.sft.loaders import load_many


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_a_mixed_format_folder_needs_no_conversion(tmp_path, capsys):
    folder = tmp_path / "sft"
    folder.mkdir()
    _write(folder / "alpaca.jsonl", [{"instruction": f"Add {i} and {i + 2}.", "input": "", "output": f"{2 * i + 2}."}
                                     for i in range(6)])
    _write(folder / "dolly.jsonl", [{"instruction": f"Summarise note {i}.", "context": f"Note {i} says the pump {i} failed.",
                                     "response": f"Pump {i} failed.", "category": "summarization"} for i in range(5)])
    _write(folder / "sharegpt.jsonl", [{"conversations": [
        {"from": "human", "value": f"What is the weather in city {i}?"},
        {"from": "function_call", "value": json.dumps({"name": "weather", "arguments": {"city": i}})},
        {"from": "observation", "value": f"{10 + i} degrees"},
        {"from": "gpt", "value": f"It is {10 + i} degrees in city {i}."}]} for i in range(4)])
    _write(folder / "openai.jsonl", [{"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": f"Name the colour number {i}."}]},
        {"role": "assistant", "content": [{"type": "text", "text": f"Colour {i} is blue."}]}]} for i in range(3)])
    (folder / "README.md").write_text("not data")  # other files in the folder are left alone

    examples, report = load_many([str(folder)])
    tasks = {}
    for example in examples:
        tasks[example.task] = tasks.get(example.task, 0) + 1
    assert tasks == {"alpaca": 6, "dolly": 5, "sharegpt": 4, "openai": 3}
    dolly = next(e for e in examples if e.task == "dolly")
    assert "pump 0 failed" in dolly.prompt.lower()  # the context goes into the prompt
    tool = next(e for e in examples if e.task == "sharegpt")
    assert "degrees" in tool.prompt and "It is 10 degrees" in tool.response

    out = tmp_path / "out"
    assert main(["data", "sft", str(folder), "--out", str(out), "--no-near-dedup"]) == 0
    text = capsys.readouterr().out
    assert "alpaca" in text and "openai" in text
    assert (out / "selected.jsonl").exists() or any(out.iterdir())


def test_an_empty_folder_is_refused_naming_it(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["data", "sft", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "empty" in capsys.readouterr().err
