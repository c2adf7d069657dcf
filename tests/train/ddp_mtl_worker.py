"""One rank of the 2-process check of train.mtl under DDP (tests/train/test_mtl_distributed.py).

Launched as ``torchrun`` launches the trainer, it builds the trainer's step for
``train.mtl`` around the wrapped model, trains on its half of each global batch
and saves the weights::

    python tests/train/ddp_mtl_worker.py MODEL_CONFIG.json MTL_JSON OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from dualasr.model.config import ModelConfig
from dualasr.train.trainer import init_distributed, wrap_distributed
from tests.train.ddp_worker import STEPS, build, global_batch, shard
from tests.train.mtl_fixtures import as_batch, tiny_step


def run_steps(model: torch.nn.Module, mtl: dict, batches, info=None) -> list[dict[str, float]]:
    """``STEPS`` SGD updates through the trainer's step; the statistics of each."""
    step = tiny_step(model, mtl, info=info)
    return [step(as_batch(*b), 1, 1)[0] for b in batches]


def main() -> None:
    cfg = ModelConfig.model_validate_json(Path(sys.argv[1]).read_text())
    mtl, out = json.loads(sys.argv[2]), Path(sys.argv[3])
    torch.set_num_threads(1)
    info = init_distributed()
    assert info.world_size == 2 and dist.get_backend() == "gloo"
    # Rank 1 starts from other weights: DDP's wrapping must broadcast rank 0's.
    model = build(cfg, 0 if info.rank == 0 else 100)
    wrap_distributed(model, info, torch.device("cpu"))
    batches = [shard(global_batch(s), info.rank, info.world_size) for s in range(STEPS)]
    stats = run_steps(model, mtl, batches, info)
    torch.save({"stats": stats, "weights": model.state_dict()}, out / f"rank{info.rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
