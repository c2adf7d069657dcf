"""One rank of the 2-process DistributedDataParallel check (tests/train/test_distributed.py).

Launched like ``torchrun`` launches the trainer (``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT`` in the environment), it joins the group and
wraps the model through the trainer's own functions, takes its half of each
global batch, and saves the gradients DDP left in the parameters::

    python tests/train/ddp_worker.py MODEL_CONFIG.json OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from dualasr.device import pick_device
from dualasr.model import build_model
from dualasr.model.config import ModelConfig
from dualasr.train.trainer import _all_finite, init_distributed, wrap_distributed

STEPS = 2
VOCAB = {"surface": 12, "meaning": 15}
LENS = (64, 47, 30, 55)


def global_batch(step: int):
    """Batch ``step`` of 4 utterances, float64 (see :func:`build`)."""
    from tests.torch_fixtures import _random_batch

    feats, lens, targets = _random_batch(seed=step, lens=LENS, vocab=VOCAB)
    return feats.double(), lens, targets


def build(cfg: ModelConfig, seed: int) -> torch.nn.Module:
    """The model in float64, so that the comparison measures DDP's averaging,
    not float32 rounding (which alone reaches 1e-5 relative on the smallest
    gradients of this model)."""
    torch.manual_seed(seed)
    return build_model(cfg, VOCAB).double()


def shard(batch, rank: int, world: int):
    """Rows of ``rank``, padded to their own longest (as the rank's collation would)."""
    feats, lens, targets = batch
    per = len(lens) // world
    rows = slice(rank * per, (rank + 1) * per)
    n = int(lens[rows].max())
    out = {}
    for o, (ys, ys_lens) in targets.items():
        out[o] = (ys[rows, : int(ys_lens[rows].max())], ys_lens[rows])
    return feats[rows, :n], lens[rows], out


def run_steps(
    model: torch.nn.Module, module: torch.nn.Module, batches
) -> list[dict[str, torch.Tensor]]:
    """``STEPS`` SGD steps; the gradients of each step."""
    # SGD is linear in the gradient: rounding noise stays noise (Adam would scale it up).
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    grads = []
    for feats, lens, targets in batches:
        loss, _ = module(feats, lens, targets)
        loss.backward()
        grads.append({k: p.grad.detach().clone() for k, p in model.named_parameters()})
        opt.step()
        opt.zero_grad(set_to_none=True)
    return grads


def main() -> None:
    cfg = ModelConfig.model_validate_json(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    torch.set_num_threads(1)
    info = init_distributed()
    assert info.world_size == 2 and dist.get_backend() == "gloo"
    # Rank 1 starts from other weights: DDP must broadcast rank 0's.
    model = build(cfg, 0 if info.rank == 0 else 100)
    module = wrap_distributed(model, info, pick_device(info.local_rank))
    assert isinstance(module, torch.nn.parallel.DistributedDataParallel)
    batches = [shard(global_batch(s), info.rank, info.world_size) for s in range(STEPS)]
    # The trainer's all-reduced finiteness check runs on both ranks too.
    assert _all_finite(module(*batches[0])[0].detach(), info)
    grads = run_steps(model, module, batches)
    torch.save({"grads": grads, "weights": model.state_dict()}, out / f"rank{info.rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
