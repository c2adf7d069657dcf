"""Two gloo processes launched as ``torchrun`` launches them (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``/``PORT``), and the comparison of their
gradients with one process's: shared by the DDP tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_ranks(worker: Path, *args: str, timeout: float = 180) -> None:
    """Run ``python worker *args`` as ranks 0 and 1 of a 2-process group on
    loopback (one thread each); fails the test with their stderr if either fails."""
    env = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}  # fmt: skip
    procs = [
        subprocess.Popen(
            [sys.executable, str(worker), *args], cwd=REPO,
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stderr=subprocess.PIPE,
        )  # fmt: skip
        for r in range(2)
    ]
    errors = [p.communicate(timeout=timeout)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(e[-2000:] for e in errors)


def assert_rank_gradients_match(ranks: list[dict], single: list[dict[str, torch.Tensor]], what: str = "") -> None:
    """Both ranks' gradients of every step are identical, and within 1e-5 of
    one process's (relative to the tensor's norm; attention key biases have an
    exactly-zero true gradient, only rounding noise, so those count against the
    whole gradient's norm)."""
    for step, ref in enumerate(single):
        scale = torch.cat([g.flatten() for g in ref.values()]).norm()
        for k, g in ref.items():
            g0, g1 = ranks[0]["grads"][step][k], ranks[1]["grads"][step][k]
            assert torch.equal(g0, g1), f"{what} step {step} {k}: ranks disagree"
            rel = float((g0 - g).norm() / torch.maximum(g.norm(), 1e-6 * scale))
            assert rel < 1e-5, f"{what} step {step} {k}: relative gradient difference {rel:.2e}"
