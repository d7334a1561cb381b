import math

import pytest

from trainwise import scaling
from trainwise.scaling.kaplan import ALPHA_B


def test_deepseek_worked_example():
    # DeepSeek LLM (arXiv:2401.02954) example: C = 1e21 -> B_opt ≈ 2.16M tokens, η_opt ≈ 7.4e-4
    assert scaling.deepseek_batch_tokens(1e21) == pytest.approx(2.16e6, rel=5e-3)
    assert scaling.deepseek_lr(1e21) == pytest.approx(7.4e-4, rel=5e-3)
    # exponents: 10x compute -> batch ×10^0.3271, LR ×10^-0.125
    assert scaling.deepseek_batch_tokens(1e22) / scaling.deepseek_batch_tokens(1e21) == pytest.approx(10**0.3271)
    assert scaling.deepseek_flops_per_token(24, 2048, 4096) == 72 * 24 * 2048**2 + 6 * 24 * 2048 * 4096


def test_step_law_headline_model():
    # Step Law (arXiv:2503.04715): 1B params on 100B tokens
    assert scaling.step_law_batch_tokens(1e11) == pytest.approx(0.58 * 1e11**0.571)
    assert scaling.step_law_batch_tokens(1e11) == pytest.approx(1.108e6, rel=1e-3)
    assert scaling.step_law_lr(1e9, 1e11) == pytest.approx(1.63e-3, rel=5e-3)
    # B independent of N; η ∝ N^-0.713
    assert scaling.step_law_lr(2e9, 1e11) / scaling.step_law_lr(1e9, 1e11) == pytest.approx(2**-0.713)


def test_kaplan_b_crit_doubles_every_13_percent_of_loss():
    # Kaplan et al. §5.1: "B_crit doubles for every 13% decrease in loss"
    b1 = scaling.kaplan_b_crit(3.0)
    b2 = scaling.kaplan_b_crit(3.0 * 2 ** (-ALPHA_B))
    assert b2 / b1 == pytest.approx(2.0)
    assert 1 - 2 ** (-ALPHA_B) == pytest.approx(0.13, abs=0.01)
    assert scaling.kaplan_b_crit(3.0) == pytest.approx(2e8 / 3 ** (1 / 0.21))
    assert scaling.kaplan_loss_at_b_crit(b1) == pytest.approx(3.0)
    # eq. 5.4/5.5 at B = B_crit: half the steps and half the compute
    assert scaling.kaplan_s_min(1000, b1, 3.0) == pytest.approx(500)
    assert scaling.kaplan_c_min(1e20, b1, 3.0) == pytest.approx(5e19)
    with pytest.raises(ValueError, match="-1"):
        scaling.kaplan_b_crit(-1.0)


def test_kaplan_loss_limits():
    # data-unlimited limit reduces to L(N) = (N_c/N)^α_N
    assert scaling.kaplan_loss(1e9, 1e30) == pytest.approx((8.8e13 / 1e9) ** 0.076, rel=1e-6)


def test_published_runs_are_consistent():
    rows = scaling.published_runs_table()
    names = {row["name"] for row in rows}
    assert {"GPT-3 175B", "PaLM 540B", "Llama 3 405B", "DeepSeek LLM 67B"} <= names
    gpt3 = next(r for r in rows if r["name"] == "GPT-3 175B")
    assert gpt3["batch_tokens"] == 3.2e6 and gpt3["batch_sequences"] == pytest.approx(1562.5)
    palm = next(r for r in rows if r["name"] == "PaLM 540B")
    assert palm["batch_sequences"] == 2048
    for row in rows:
        assert row["source"] and math.isfinite(row["lr"]) and row["batch_tokens"] > 0
