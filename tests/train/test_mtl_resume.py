"""Loss weightings learn during training and resume exactly: their state
(log-variances, GradNorm weights and both optimizers, DWA's epoch losses)
travels in ``checkpoints/last.pt``."""

from __future__ import annotations

import pytest
import torch

from dualasr.config import MTLConfig
from dualasr.model.checkpoint import load_checkpoint


@pytest.mark.parametrize("weighting", ["uncertainty", "gradnorm", "dwa", "famo"])
def test_weights_change_and_survive_stop_and_resume(run, tmp_path, weighting):
    train_cfg = run.train_cfg.model_copy(update={"mtl": MTLConfig(weighting=weighting)})
    torch.set_num_threads(1)
    reference = run(tmp_path / "reference", train_cfg=train_cfg)
    out = tmp_path / "resumed"
    run(out, train_cfg=train_cfg, stop_after_epoch=1)
    run(out, train_cfg=train_cfg)
    run.assert_same_weights(reference, out / "model.pt")
    ref_last, last = (load_checkpoint(d / "checkpoints" / "last.pt") for d in (reference.parent, out))
    assert ref_last["mtl"].keys() == last["mtl"].keys() and last["mtl"]
    for key in ref_last["mtl"]["module"]:
        assert torch.equal(ref_last["mtl"]["module"][key], last["mtl"]["module"][key]), key
    rows = run.metric_rows(out / "metrics.csv")
    assert rows == run.metric_rows(reference.parent / "metrics.csv")
    surface = [float(r[4]) for r in rows if r[2:4] == ("train", "mtl_weight_surface")]
    assert len(surface) > 3
    assert len(set(surface)) > 1, f"{weighting}: the surface weight never moved: {surface}"
