"""The model-side methods against negative transfer (hierarchical outputs with
self-conditioning, per-output adapters, a separation penalty) under 2-process
DistributedDataParallel (Gloo), through the trainer's ``init_distributed`` and
``wrap_distributed`` (the worker of tests/train/test_distributed.py).

DDP raises in ``backward`` when a parameter it registered gets no gradient, so
a run that completes shows every parameter a method adds takes part in the
loss. Beyond that, the two ranks' gradients are compared with one process:

- hierarchy and adapters are batch-independent per utterance, so each rank's
  gradient equals one process's on the whole global batch;
- the separation penalty is computed over the valid frames of a rank's own
  batch (centred over them: not a sum over utterances), so DDP gives the mean
  over ranks of each shard's gradient, not the global batch's; one process
  reproduces that mean shard by shard.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.train.ddp_worker import STEPS, build, global_batch, shard
from tests.train.two_ranks import assert_rank_gradients_match, run_two_ranks

WORKER = Path(__file__).with_name("ddp_worker.py")

METHODS = {
    "hierarchy_sc": {"hierarchy": {"surface_layer": 1, "surface_decoder": True, "self_condition": True}},
    "adapters": {"adapters": {"layers": 1, "dim": 8}},
    "orthogonality": {"encoder": {"task_specific_layers": 1}, "separation": {"kind": "orthogonality", "weight": 5.0}},
}  # fmt: skip


def reference_steps(model: torch.nn.Module, batches: list[list[tuple]]) -> list[dict[str, torch.Tensor]]:
    """``STEPS`` SGD steps (as the worker's ``run_steps``), each on the mean of the
    gradients of ``batches[step]``'s parts, every part a batch of its own."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    grads = []
    for parts in batches:
        for feats, lens, targets in parts:
            (model(feats, lens, targets)[0] / len(parts)).backward()
        grads.append({k: p.grad.detach().clone() for k, p in model.named_parameters()})
        opt.step()
        opt.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize("method", list(METHODS))
def test_two_rank_ddp_trains_model_side_methods(tiny_config, tmp_path, method):
    # LayerNorm in the convolution module: BatchNorm statistics are per rank under DDP.
    overrides = {**METHODS[method]}
    overrides["encoder"] = {"conv_norm": "layer", **overrides.get("encoder", {})}
    cfg = tiny_config("do", **overrides)
    (tmp_path / "model.json").write_text(cfg.model_dump_json())
    run_two_ranks(WORKER, str(tmp_path / "model.json"), str(tmp_path))

    model = build(cfg, 0)
    if cfg.separation is None:  # per-utterance losses: the global batch is the reference
        batches = [[global_batch(s)] for s in range(STEPS)]
    else:
        batches = [[shard(global_batch(s), r, 2) for r in range(2)] for s in range(STEPS)]
    single = reference_steps(model, batches)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert_rank_gradients_match(ranks, single, method)
    # The method's own parameters moved: they are trained, not merely registered.
    own = {"hierarchy_sc": "condition", "adapters": "adapter", "orthogonality": "branch"}[method]
    moved = [k for k, w in model.state_dict().items() if own in k and not torch.equal(w, build(cfg, 0).state_dict()[k])]
    assert moved, f"{method}: no parameter named *{own}* changed ({list(model.state_dict())[:5]}...)"
    for k, w in model.state_dict().items():
        torch.testing.assert_close(ranks[1]["weights"][k], w, rtol=1e-5, atol=1e-8, msg=k)
