"""Non-finite losses and gradients: the step is skipped (the weights do not
move) and counted in ``metrics.csv`` and ``train_summary.json``."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

from dualasr.model.asr import DualASR

BAD_CALL = 3  # the third training batch goes wrong


@pytest.mark.parametrize("where", ["feature", "gradient"])
def test_nonfinite_step_is_skipped_and_counted(run, tmp_path, where):
    """``feature``: one input value is inf, so the loss is not finite;
    ``gradient``: the loss is finite but its backward pass yields NaN gradients."""
    snapshots, losses = [], []

    def before(module, args):
        if not (isinstance(module, DualASR) and module.training):
            return None
        # Weights and buffers (BatchNorm's running statistics and batch count).
        state = [t.detach().flatten().double() for t in (*module.parameters(), *module.buffers())]
        snapshots.append(torch.cat(state))
        if where == "feature" and len(snapshots) == BAD_CALL:
            feats = args[0].clone()
            feats[0, 0, 0] = float("inf")
            return (feats, *args[1:])
        return None

    def after(module, args, output):
        if not (isinstance(module, DualASR) and module.training):
            return None
        loss, stats = output
        losses.append(loss.item())
        if where == "gradient" and len(snapshots) == BAD_CALL:
            loss.register_hook(lambda g: g * float("nan"))
        return None

    hooks = [register_module_forward_pre_hook(before), register_module_forward_hook(after)]
    try:
        out = tmp_path / "do"
        run(out, train_cfg=run.train_cfg.model_copy(update={"epochs": 2}))
    finally:
        for h in hooks:
            h.remove()

    n = len(snapshots)
    assert n >= 8  # two epochs of several batches
    bad = BAD_CALL - 1
    assert torch.isfinite(torch.tensor(losses[bad])) == (where == "gradient")
    assert all(torch.isfinite(torch.tensor(x)) for i, x in enumerate(losses) if i != bad)
    # The weights and buffers before the bad batch are those before the next one ...
    assert torch.equal(snapshots[bad], snapshots[bad + 1])
    # ... while every other batch moved them.
    assert all(not torch.equal(snapshots[i], snapshots[i + 1]) for i in range(n - 1) if i != bad)

    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["skipped_steps"] == 1
    assert summary["steps"] == n - 1
    rows = run.metric_rows(out / "metrics.csv")
    # Cumulative count, one row per epoch.
    assert [r[4] for r in rows if r[2:4] == ("dev", "skipped_steps")] == ["1", "1"]
    train_steps = sorted({int(r[1]) for r in rows if r[2] == "train"})
    assert train_steps == list(range(1, n))  # logged every step, none for the skipped one
    assert torch.isfinite(
        torch.cat([v.flatten().float() for v in run.weights(out / "model.pt").values()])
    ).all()
