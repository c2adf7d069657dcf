"""Validation metrics: the CTC token error rate is total edits over total
target tokens across batches of different sizes, not a mean of batch rates."""

from __future__ import annotations

import pytest
import torch

from dualasr.model import build_model
from dualasr.train.trainer import DistInfo, validate


def test_ctc_token_error_rate_pools_edits_over_batches(tiny_config, random_batch, vocab):
    torch.manual_seed(0)
    model = build_model(tiny_config("sso"), vocab)
    batches = []
    for seed, lens in ((0, (64, 47, 30)), (1, (50,))):
        feats, feat_lens, targets = random_batch(seed, lens)
        batches.append({"feats": feats, "feat_lens": feat_lens, "targets": targets})
    edits = tokens = weighted_rates = 0.0
    model.eval()
    with torch.no_grad():
        for batch in batches:
            _, stats = model(batch["feats"], batch["feat_lens"], batch["targets"])
            n = len(batch["feat_lens"])
            edits += stats["ctc_edits_surface"] * n
            tokens += stats["ctc_ref_surface"] * n
            weighted_rates += stats["ctc_edits_surface"] / stats["ctc_ref_surface"] * n
    assert edits > 0
    # The batches' rates differ, so pooling and averaging them would not agree.
    assert weighted_rates / 4 != pytest.approx(edits / tokens)
    dev = validate(model, batches, torch.device("cpu"), DistInfo())
    assert dev["ter_ctc_surface"] == pytest.approx(edits / tokens)
    assert not any(k.startswith(("ctc_edits", "ctc_ref")) for k in dev)
    assert model.training  # validate hands the model back in training mode
