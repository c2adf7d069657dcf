"""Resuming: a run stopped (or killed) after a checkpoint and restarted ends
exactly where the uninterrupted run does, weights and logged losses alike.

Checkpoints are written at epoch ends; a run killed during epoch ``e``
restarts epoch ``e`` from the end of epoch ``e - 1`` (the documented
behaviour), so it is exact too, only the work of the partial epoch is lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dualasr.model.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[2]


def test_stop_and_resume_equals_uninterrupted(run, reference, tmp_path):
    out = tmp_path / "do"
    last = run(out, stop_after_epoch=1)
    assert last == out / "checkpoints" / "last.pt"
    assert not (out / "model.pt").exists()
    assert load_checkpoint(last)["epoch"] == 1
    assert {r[0] for r in run.metric_rows(out / "metrics.csv")} == {"1"}
    final = run(out)
    assert final == out / "model.pt"
    run.assert_same_weights(reference / "model.pt", final)
    run.assert_same_weights(reference / "checkpoints" / "last.pt", out / "checkpoints" / "last.pt")
    rows = run.metric_rows(out / "metrics.csv")
    assert rows == run.metric_rows(reference / "metrics.csv")
    assert {r[0] for r in rows} == {"1", "2", "3"}
    assert sum(r[2:4] == ("train", "loss") for r in rows) > 3  # one row per step (log_every 1)


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(run, reference, tmp_path):
    out = tmp_path / "do"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "dualasr.cli", "train", "--data", str(run.corpus), "--out", str(out),
           "--config", str(run.yaml), "--model", "do", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    metrics, deadline = out / "metrics.csv", time.monotonic() + 120
    try:
        # Kill once epoch 1 is checkpointed and epoch 2 has logged a training step.
        while not (
            metrics.exists() and any(ln.startswith("2,") for ln in metrics.read_text().splitlines())
        ):
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "no epoch-2 step logged within 120 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "model.pt").exists()
    assert load_checkpoint(out / "checkpoints" / "last.pt")["epoch"] in (1, 2)
    run(out)  # resume in this process
    run.assert_same_weights(reference / "model.pt", out / "model.pt")
    # The killed epoch's partial rows were dropped: the log reads as one run.
    assert run.metric_rows(out / "metrics.csv") == run.metric_rows(reference / "metrics.csv")
