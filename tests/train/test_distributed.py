"""Two CPU processes under DistributedDataParallel (Gloo), set up by the
trainer's ``init_distributed`` and ``wrap_distributed``, compute the same
averaged gradients as one process on the whole global batch."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("ddp_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    env = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}  # fmt: skip
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(tmp_path / "model.json"), str(tmp_path)],
            cwd=REPO,
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for r in range(2)
    ]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(e[-2000:] for e in errors)

    worker = load_worker()
    model = worker.build(cfg, 0)
    single = worker.run_steps(model, model, [worker.global_batch(s) for s in range(worker.STEPS)])
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for step, ref in enumerate(single):
        scale = torch.cat([g.flatten() for g in ref.values()]).norm()
        for k, g in ref.items():
            g0, g1 = ranks[0]["grads"][step][k], ranks[1]["grads"][step][k]
            assert torch.equal(g0, g1), f"step {step} {k}: ranks disagree"
            # Relative to the tensor's own norm; attention key biases have an
            # exactly-zero true gradient (softmax ignores a per-row shift), only
            # rounding noise, so those count against the whole gradient's norm.
            rel = float((g0 - g).norm() / torch.maximum(g.norm(), 1e-6 * scale))
            assert rel < 1e-5, f"step {step} {k}: relative gradient difference {rel:.2e}"
    for k, w in model.state_dict().items():
        torch.testing.assert_close(ranks[1]["weights"][k], w, rtol=1e-5, atol=1e-8, msg=k)
