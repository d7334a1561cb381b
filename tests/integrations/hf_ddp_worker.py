"""Run under torchrun (2 processes, gloo): the HF Trainer with its defaults (clipping on) and NoiseScaleCallback.

Rank 0 writes ``{"records": ..., "log_history": ..., "source": ...}`` to argv[1]; every rank's records are compared.
"""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from hf_trainer import build_trainer  # noqa: E402


def main(out_path: str) -> None:
    torch.set_num_threads(1)
    trainer, callback = build_trainer(str(Path(out_path).parent / "hf_ddp"), steps=4, accumulation=2, micro=2)
    trainer.args.logging_steps = 2
    trainer.train()
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, callback.records)
    if dist.get_rank() == 0:
        assert gathered[0] == gathered[1], "ranks disagree on the noise-scale records"
        Path(out_path).write_text(json.dumps({"records": callback.records, "log_history": trainer.state.log_history,
                                              "source": callback.monitor.source, "world": dist.get_world_size()}))
    dist.barrier()  # no rank tears gloo down while another still talks to it
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
