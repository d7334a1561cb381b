"""Published scaling laws for batch size and learning rate, one small function each, with citations.

All batch sizes here are in **tokens**; compute ``C`` in FLOPs; ``N`` non-embedding parameters; ``D`` tokens.
"""

from trainwise.scaling.deepseek import deepseek_batch_tokens, deepseek_flops_per_token, deepseek_lr
from trainwise.scaling.kaplan import kaplan_b_crit, kaplan_loss, kaplan_c_min, kaplan_loss_at_b_crit, kaplan_s_min
from trainwise.scaling.published_runs import PUBLISHED_RUNS, PublishedRun, published_runs_table
from trainwise.scaling.step_law import step_law_batch_tokens, step_law_lr

__all__ = [
    "kaplan_b_crit",
    "kaplan_loss",
    "kaplan_loss_at_b_crit",
    "kaplan_s_min",
    "kaplan_c_min",
    "deepseek_lr",
    "deepseek_batch_tokens",
    "deepseek_flops_per_token",
    "step_law_lr",
    "step_law_batch_tokens",
    "PUBLISHED_RUNS",
    "PublishedRun",
    "published_runs_table",
]
