import math
from pathlib import Path

import pytest

from trainwise.calibration import (
    CALIBRATION,
    CalibrationRow,
    PredictorCalibration,
    b_crit_range,
    best_predictor,
    lr_validation_for,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "critical-batch.md"


def test_sgd_b_simple_summary_by_hand():
    calib = CALIBRATION["sgd"]["b_simple"]
    assert [(r.setting, r.target, r.ratio) for r in calib.rows] == [
        ("char-gpt-sgdm", 2.6, 0.93), ("char-gpt-sgdm", 2.5, 0.89), ("char-gpt-sgdm", 2.4, 0.60)]
    assert calib.low == 0.60 and calib.high == 0.93
    # (0.93 · 0.89 · 0.60)^(1/3) = 0.49662^(1/3) = exp(-0.69993/3)
    assert calib.geometric_mean == pytest.approx(0.79191, abs=1e-4)
    assert calib.max_abs_log == pytest.approx(0.51083, abs=1e-4)  # -ln 0.60
    assert calib.settings == ("char-gpt-sgdm",)


def test_range_implied_by_a_reading_by_hand():
    calib = CALIBRATION["sgd"]["b_simple"]
    low, high = b_crit_range(100.0, calib)
    assert low == pytest.approx(107.527, abs=1e-3)  # 100 / 0.93
    assert high == pytest.approx(166.667, abs=1e-3)  # 100 / 0.60
    with pytest.raises(ValueError, match="positive"):
        b_crit_range(0.0, calib)


def test_best_predictor_follows_the_data():
    # SGD: B_simple's worst row is 0.60 (|ln| 0.51), B_noise's 0.45 (|ln| 0.80)
    assert best_predictor("sgd", {"b_simple", "b_noise"})[0] == "b_simple"
    assert best_predictor("sgd", {"b_noise"})[0] == "b_noise"
    # Adam: the predictor with the smallest worst-case |ln ratio| among those read on >= 2 settings
    worst = {name: max(abs(math.log(r.ratio)) for r in c.rows) for name, c in CALIBRATION["adam"].items()
             if len({r.setting for r in c.rows}) >= 2}
    assert best_predictor("adam", set(CALIBRATION["adam"]))[0] == min(worst, key=worst.get)
    with pytest.raises(ValueError, match="family"):
        best_predictor("lion", {"b_simple"})
    with pytest.raises(ValueError, match="calibrated"):
        best_predictor("sgd", {"b_noise_precond"})


def test_a_predictor_read_on_one_setting_only_competes_when_nothing_broader_is_available(monkeypatch):
    narrow = PredictorCalibration("b_simple_precond", "sgd", (CalibrationRow("x", 1.0, 1.0),))
    monkeypatch.setitem(CALIBRATION, "sgd", {**CALIBRATION["sgd"], "b_simple_precond": narrow})
    # a perfect score on one setting does not beat B_simple's two...
    broad = PredictorCalibration("b_simple", "sgd", (CalibrationRow("a", 1.0, 0.5), CalibrationRow("b", 1.0, 2.0)))
    monkeypatch.setitem(CALIBRATION["sgd"], "b_simple", broad)
    assert best_predictor("sgd", {"b_simple", "b_simple_precond"})[0] == "b_simple"
    # ...but wins when the others are single-setting too
    assert best_predictor("sgd", {"b_noise", "b_simple_precond"})[0] == "b_simple_precond"


def test_rows_are_validated():
    with pytest.raises(ValueError, match="no rows"):
        PredictorCalibration("b_simple", "adam", ())
    with pytest.raises(ValueError, match="positive"):
        PredictorCalibration("b_simple", "adam", (CalibrationRow("a", 1.0, -0.5),))


def test_the_docs_table_holds_every_calibrated_ratio():
    """docs/critical-batch.md, section Calibration: a row per (family, setting, target), a column per predictor."""
    text = DOC.read_text()
    section = text[text.index("### Calibration"):]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip().strip("`") for c in lines[0].strip("|").split("|")]
    assert header[:3] == ["family", "setting", "target"]
    found = {}
    for line in lines[2:]:
        cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
        if cells[0] not in CALIBRATION:
            break
        if "⚑" in cells[2]:  # a flagged target: shown, not calibrated on
            continue
        for name, cell in zip(header[3:], cells[3:]):
            if cell not in ("–", "-", ""):
                found[(cells[0], name, cells[1], float(cells[2]))] = float(cell.rstrip(" ⚑"))
    expected = {(family, name, r.setting, r.target): r.ratio
                for family, table in CALIBRATION.items() for name, c in table.items() for r in c.rows}
    assert found == expected


def test_lr_validation_is_none_where_not_measured():
    assert lr_validation_for("sgd", "no-such-kind") is None
    assert lr_validation_for("adam", "sweep") is None


def test_lr_validation_quotes_the_benchmark_range():
    text = lr_validation_for("adam", "rescaled")
    assert "1.00–1.53×" in text and "0.3–1×" in text  # steps ratios 1.00, 1.00, 1.53, 1.00; LR ratios 0.30-1.00
    assert "needed 1.01× the steps" in lr_validation_for("sgd", "rescaled")  # one row: one number, not a range
