import json

import numpy as np
import pytest

from trainwise.cli.main import main


def _tiny_hf_model(directory, text):
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {"<bos>": 0, "<unk>": 1}
    for ch in sorted(set(text)):
        vocab[ch] = len(vocab)
    core = tokenizers.Tokenizer(tokenizers.models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))  # one token per character
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", unk_token="<unk>")
    tokenizer.save_pretrained(directory)
    config = transformers.GPT2Config(vocab_size=len(vocab), n_positions=128, n_embd=32, n_layer=1, n_head=2,
                                     bos_token_id=0, eos_token_id=0)
    transformers.GPT2LMHeadModel(config).save_pretrained(directory)


def test_ifd_from_a_local_hf_model(tmp_path, capsys):
    rows = [{"prompt": f"Repeat the word {w}.", "response": f"{w} {w} {w}."} for w in
            ("apple", "river", "stone", "cloud", "piano", "tiger", "lemon", "chair")]
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    model_dir = tmp_path / "model"
    _tiny_hf_model(model_dir, "".join(r["prompt"] + r["response"] for r in rows))
    code = main(["data", "sft", str(data), "--embed", "tfidf", "--ifd-model", str(model_dir), "--out", str(tmp_path / "o"),
                 "--json", "--quiet", "--no-near-dedup"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    scores = [json.loads(line) for line in (tmp_path / "o" / "scores.jsonl").read_text().splitlines()]
    ifd = np.array([row["ifd"] for row in scores])
    assert len(ifd) == 8 and np.all(np.isfinite(ifd)) and np.all(ifd > 0)
    # same numbers as the Python API on the same model
    from trainwise.data.sft.scores import ifd_scores, load_hf_causal_lm

    model, encode, bos, context = load_hf_causal_lm(str(model_dir))
    direct = ifd_scores(model, encode, [r["prompt"] for r in rows], [r["response"] for r in rows], max_length=context, bos_token_id=bos)
    assert ifd == pytest.approx(direct.ifd, rel=1e-5)
    assert report["scores"]["ifd"]["mean"] == pytest.approx(float(direct.ifd.mean()), rel=1e-5)
    # dropping above a threshold counts every drop under its reason
    threshold = float(np.median(ifd))
    code = main(["data", "sft", str(data), "--embed", "tfidf", "--ifd-model", str(model_dir), "--max-ifd", str(threshold),
                 "--json", "--quiet", "--no-near-dedup"])
    report = json.loads(capsys.readouterr().out)
    assert report["dropped"]["counts"]["ifd_above_max"] == int((ifd > threshold).sum())
    assert report["cleaned"]["examples"] == int((ifd <= threshold).sum())


def test_max_ifd_needs_a_model(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "a", "response": "b"}) + "\n")
    assert main(["data", "sft", str(data), "--max-ifd", "1.0", "--quiet"]) == 2
    assert "--ifd-model" in capsys.readouterr().err
