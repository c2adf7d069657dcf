"""train.mtl under 2-process DDP (Gloo) gives the update of one process on the
same global batch: torchjd's Jacobians (and the weightings' statistics) are
averaged over the ranks before they are used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.train.ddp_mtl_worker import run_steps
from tests.train.ddp_worker import STEPS, build, global_batch
from tests.train.two_ranks import run_two_ranks

WORKER = Path(__file__).with_name("ddp_mtl_worker.py")


@pytest.mark.parametrize(
    "mtl", [{"aggregator": "upgrad"}, {"weighting": "gradnorm"}, {"weighting": "famo"}], ids=["upgrad", "gradnorm", "famo"]
)
def test_two_rank_mtl_update_equals_one_process(tiny_config, tmp_path, mtl):
    # LayerNorm in the convolution module: BatchNorm statistics are per rank.
    cfg = tiny_config("do", encoder={"conv_norm": "layer"})
    (tmp_path / "model.json").write_text(cfg.model_dump_json())
    run_two_ranks(WORKER, str(tmp_path / "model.json"), json.dumps(mtl), str(tmp_path))

    model = build(cfg, 0)
    single = run_steps(model, mtl, [global_batch(s) for s in range(STEPS)])
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for k, w in model.state_dict().items():
        assert torch.equal(ranks[0]["weights"][k], ranks[1]["weights"][k]), f"{k}: ranks disagree"
        # atol 1e-8: the weightings divide by the global batch's losses, which two ranks
        # average from their shards and one process sums at once (rounding apart).
        torch.testing.assert_close(ranks[0]["weights"][k], w, rtol=1e-6, atol=1e-8, msg=lambda m, k=k: f"{k}: {m}")
    for step in range(STEPS):  # the per-output weights the method chose: the global batch's
        for o in ("surface", "meaning"):
            got = float(ranks[0]["stats"][step][f"mtl_weight_{o}"])
            assert got == pytest.approx(float(single[step][f"mtl_weight_{o}"]), rel=1e-5), (step, o)
