import json

import pytest

from trainwise.data.sft.loaders import SFTFormatError, instruction_text, load_jsonl, load_many, parse_record


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_all_formats_parse(tmp_path):
    rows = [
        {"prompt": "P1", "response": "R1"},
        {"instruction": "Translate", "input": "chat", "output": "cat"},
        {"instruction": "Say hi", "input": "", "output": "hi"},
        {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}]},
        {"conversations": [{"from": "human", "value": "H"}, {"from": "gpt", "value": "G"}]},
        {"question": "Q", "answer": "A"},
    ]
    path = _write(tmp_path / "mix.jsonl", [json.dumps(r) for r in rows] + [""])
    examples = load_jsonl(path)
    assert [e.format for e in examples] == ["prompt", "instruction", "instruction", "messages", "conversations", "question"]
    assert examples[1].prompt == "Translate\n\nchat" and examples[1].response == "cat"
    assert examples[2].prompt == "Say hi"
    assert examples[3].prompt == "system: S\nuser: U" and examples[3].response == "A"
    assert examples[3].instruction == "U"
    assert examples[3].messages[-1] == {"role": "assistant", "content": "A"}
    assert examples[4].response == "G"
    assert all(e.task == "mix" for e in examples)
    assert examples[5].source.endswith("mix.jsonl:6")


def test_malformed_line_names_file_and_line(tmp_path):
    path = _write(tmp_path / "bad.jsonl", ['{"prompt": "a", "response": "b"}', '{"prompt": "a", "response": ', '{"foo": 1}'])
    with pytest.raises(SFTFormatError, match=r"bad\.jsonl:2: invalid JSON"):
        load_jsonl(path)
    examples, report = load_many([str(path)], on_error="skip")
    assert len(examples) == 1
    assert [(b.line, b.problem.split(" ")[0]) for b in report.skipped] == [(2, "invalid"), (3, "unrecognised")]
    assert "['foo']" in report.skipped[1].problem


@pytest.mark.parametrize(
    "record, message",
    [
        ({"messages": [{"role": "user", "content": "only"}]}, "no assistant turn"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, "no prompt"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "unknown role 'wizard'"),
        ({"prompt": 3, "response": "x"}, "must be a string"),
        ({"instruction": "x"}, "needs an answer field"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_bad_records(record, message):
    with pytest.raises(SFTFormatError, match=message):
        parse_record(record, "f.jsonl", 7)


def test_named_tasks_and_missing_file(tmp_path):
    path = _write(tmp_path / "x.jsonl", ['{"prompt": "a", "response": "b"}'])
    examples, report = load_many([f"math={path}"])
    assert examples[0].task == "math" and report.per_file == {str(path): 1}
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_jsonl(tmp_path / "nope.jsonl")


def test_instruction_text_strips_templates():
    alpaca = "Below is an instruction.\n\n### Instruction:\nWhat is X?\n\n### Response:\n"
    assert instruction_text(alpaca) == "What is X?"
    with_input = "### Instruction:\nSum\n\n### Input:\n1 2\n\n### Response:\n"
    assert instruction_text(with_input) == "Sum\n1 2"
    assert instruction_text("\n\nHuman: hi there\n\nAssistant:") == "hi there"
    assert instruction_text("  plain  ") == "plain"


def test_gsm8k_and_dolly_load(shared_data):
    train = load_jsonl(shared_data / "gsm8k" / "train.jsonl")
    assert len(train) == 7473 and train[0].format == "question"
    dolly = load_jsonl(shared_data / "instruct_and_arxiv" / "dolly_hhrlhf_train_small.jsonl")
    assert len(dolly) == 1000 and "### Instruction" not in dolly[0].instruction


def test_gzip_and_byte_order_mark(tmp_path):
    import gzip

    path = tmp_path / "z.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\ufeff" + json.dumps({"prompt": "p", "response": "r"}) + "\n")
    examples = load_jsonl(path)
    assert len(examples) == 1 and examples[0].task == "z"
    bad = tmp_path / "latin.jsonl"
    bad.write_bytes(b'{"prompt": "caf\xe9", "response": "x"}\n')
    with pytest.raises(SFTFormatError, match=r"latin\.jsonl:1: not valid UTF-8"):
        load_jsonl(bad)
