"""Learning-rate schedules: Noam (warmup, then 1/sqrt(step)) and linear (warmup,
then a straight line to 0 at the last step of the last epoch), the latter
through a real run, stopped and resumed."""

from __future__ import annotations

import itertools
import math

import pytest

from dualasr.model.checkpoint import load_checkpoint
from dualasr.train.trainer import lr_lambda


def test_noam_multiplier():
    f = lr_lambda("noam", warmup=100)
    assert [f(s) for s in (1, 50, 100)] == pytest.approx([0.01, 0.5, 1.0])
    assert f(400) == pytest.approx(0.5)  # sqrt(100 / 400)
    assert lr_lambda("noam", warmup=0)(7) == 1.0


def test_linear_multiplier():
    f = lr_lambda("linear", warmup=100, total_steps=300)
    assert [f(s) for s in (50, 100, 200, 300, 350)] == pytest.approx([0.5, 1.0, 0.5, 0.0, 0.0])
    with pytest.raises(ValueError, match="warmup_steps"):
        lr_lambda("linear", warmup=100, total_steps=100)


def _lrs(run, out):
    return [float(r[4]) for r in run.metric_rows(out / "metrics.csv") if r[2:4] == ("train", "lr")]


def test_linear_run_decays_to_zero_and_resumes_exactly(run, tmp_path):
    cfg = run.train_cfg.model_copy(update={"schedule": "linear"})
    whole = tmp_path / "whole"
    run(whole, train_cfg=cfg)
    lrs = _lrs(run, whole)  # lr after each optimizer step (log_every 1)
    steps = len(lrs)
    assert steps > 3 * cfg.warmup_steps
    peak = lrs.index(max(lrs))
    assert max(lrs) == pytest.approx(cfg.lr) and peak == cfg.warmup_steps - 1
    decay = [b - a for a, b in itertools.pairwise(lrs[peak:])]
    # One straight line down (the last epoch may have a batch more or less than
    # the first, from which the step count is taken: the line is clamped at 0).
    slope = -cfg.lr / (steps - cfg.warmup_steps)
    assert all(
        math.isclose(d, slope, rel_tol=0.2) or lr == 0
        for d, lr in zip(decay, lrs[peak + 1 :], strict=True)
    )
    assert lrs[-1] <= 2 * abs(slope)
    # A stop after epoch 1 and a restart follows the same line to the same weights.
    parted = tmp_path / "parted"
    run(parted, train_cfg=cfg, stop_after_epoch=1)
    assert load_checkpoint(parted / "checkpoints" / "last.pt")["epoch"] == 1
    run(parted, train_cfg=cfg)
    assert _lrs(run, parted) == lrs
    run.assert_same_weights(whole / "model.pt", parted / "model.pt")
