"""Batch sizes and learning rates of published pre-training runs, for scale.

Each row is what the paper states for its main run; ``batch_tokens`` is the (final) global batch in
tokens, ``batch_sequences`` the same in sequences of ``seq_len`` tokens. Where the batch was ramped up,
``note`` says how. Learning rates are the peak of the schedule (AdamW unless said otherwise).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["PublishedRun", "PUBLISHED_RUNS", "published_runs_table"]


@dataclass(frozen=True)
class PublishedRun:
    name: str
    params: float  #: parameters (total; for MoE the active count is in ``note``)
    tokens: float  #: training tokens
    batch_tokens: float  #: global batch, tokens (final value when ramped)
    seq_len: int
    lr: float  #: peak learning rate
    source: str
    note: str = ""

    @property
    def batch_sequences(self) -> float:
        return self.batch_tokens / self.seq_len

    def to_dict(self) -> dict:
        row = asdict(self)
        row["batch_sequences"] = self.batch_sequences
        return row


PUBLISHED_RUNS: tuple[PublishedRun, ...] = (
    PublishedRun("GPT-3 Small", 125e6, 300e9, 0.5e6, 2048, 6.0e-4, "Brown et al. 2020, arXiv:2005.14165, Table 2.1"),
    PublishedRun("GPT-3 Medium", 350e6, 300e9, 0.5e6, 2048, 3.0e-4, "Brown et al. 2020, arXiv:2005.14165, Table 2.1"),
    PublishedRun("GPT-3 XL", 1.3e9, 300e9, 1.0e6, 2048, 2.0e-4, "Brown et al. 2020, arXiv:2005.14165, Table 2.1"),
    PublishedRun("GPT-3 175B", 175e9, 300e9, 3.2e6, 2048, 0.6e-4, "Brown et al. 2020, arXiv:2005.14165, Table 2.1",
                 "batch ramped up linearly from 32k tokens over the first 4-12B tokens"),
    PublishedRun("Chinchilla 70B", 70e9, 1.4e12, 3.0e6, 2048, 1.0e-4, "Hoffmann et al. 2022, arXiv:2203.15556, Table 4",
                 "batch 1.5M tokens, doubled to 3M midway"),
    PublishedRun("PaLM 540B", 540e9, 780e9, 2048 * 2048, 2048, 1.0e-2, "Chowdhery et al. 2022, arXiv:2204.02311, §5",
                 "Adafactor; batch 512 -> 1024 -> 2048 sequences; LR 1e-2 for 10k steps then 1/sqrt(k)"),
    PublishedRun("Llama 2 7B", 7e9, 2e12, 4.0e6, 4096, 3.0e-4, "Touvron et al. 2023, arXiv:2307.09288, Table 1"),
    PublishedRun("Llama 3 8B", 8e9, 15e12, 4.0e6, 8192, 3.0e-4, "Meta 2024, arXiv:2407.21783 and model card"),
    PublishedRun("Llama 3 405B", 405e9, 15.6e12, 16.0e6, 8192, 8.0e-5, "Meta 2024, The Llama 3 Herd of Models, arXiv:2407.21783, §3.4.1",
                 "4M tokens (seq 4096), 8M after 252M tokens, 16M after 2.87T tokens"),
    PublishedRun("DeepSeek LLM 7B", 7e9, 2e12, 2304 * 4096, 4096, 4.2e-4, "DeepSeek-AI 2024, arXiv:2401.02954, Table 2"),
    PublishedRun("DeepSeek LLM 67B", 67e9, 2e12, 4608 * 4096, 4096, 3.2e-4, "DeepSeek-AI 2024, arXiv:2401.02954, Table 2"),
    PublishedRun("DeepSeek-V3", 671e9, 14.8e12, 15360 * 4096, 4096, 2.2e-4, "DeepSeek-AI 2024, arXiv:2412.19437, §4.2",
                 "MoE, 37B active; batch ramped 3072 -> 15360 sequences over the first 469B tokens"),
)


def published_runs_table() -> list[dict]:
    """All rows as dictionaries (for JSON output and the report)."""
    return [run.to_dict() for run in PUBLISHED_RUNS]
