import json

import pytest

from trainwise.report.html import collect_results, write_report


def test_report_embeds_branched_and_rejects_unknown(tmp_path):
    branched = {"kind": "branched", "method": "Merrill et al. 2025",
                "checkpoints": [{"step": 0, "examples": 0, "loss": 2.3, "b_crit": 8, "capped": False, "branches": []},
                                {"step": 100, "examples": 800, "loss": 0.5, "b_crit": 64, "capped": True, "branches": []}]}
    (tmp_path / "branched.json").write_text(json.dumps(branched))
    out = write_report([tmp_path], tmp_path / "r.html", title="T & <b>")
    html = out.read_text()
    assert "Branched critical batch" in html and "data:image/png;base64," in html
    assert "T &amp; &lt;b&gt;" in html  # escaped
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="other.json"):
        collect_results([tmp_path / "other.json"])
    with pytest.raises(FileNotFoundError, match="missing"):
        collect_results([tmp_path / "missing"])
