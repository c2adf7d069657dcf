"""Two CPU processes under DistributedDataParallel (Gloo), set up by the
trainer's ``init_distributed`` and ``wrap_distributed``, compute the same
averaged gradients as one process on the whole global batch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from tests.train.two_ranks import assert_rank_gradients_match, run_two_ranks

WORKER = Path(__file__).with_name("ddp_worker.py")


def load_worker():
    spec = importlib.util.spec_from_file_location("ddp_worker", WORKER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_two_rank_ddp_gradients_equal_one_process(tiny_config, tmp_path):
    # LayerNorm in the convolution module: BatchNorm statistics are per rank
    # under DDP (no SyncBatchNorm), so only a batch-independent model can match.
    cfg = tiny_config("do", encoder={"conv_norm": "layer"})
    (tmp_path / "model.json").write_text(cfg.model_dump_json())
    run_two_ranks(WORKER, str(tmp_path / "model.json"), str(tmp_path), timeout=120)

    worker = load_worker()
    model = worker.build(cfg, 0)
    single = worker.run_steps(model, model, [worker.global_batch(s) for s in range(worker.STEPS)])
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert_rank_gradients_match(ranks, single)
    for k, w in model.state_dict().items():
        torch.testing.assert_close(ranks[1]["weights"][k], w, rtol=1e-5, atol=1e-8, msg=k)
