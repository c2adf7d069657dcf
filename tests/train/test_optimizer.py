"""The trainer's optimizer and step keep the update of plain AdamW while doing less per step."""

from __future__ import annotations

import copy

import torch

from dualasr.config import TrainConfig
from dualasr.model import build_model
from dualasr.train.trainer import DistInfo, make_optimizer, make_step, mixed_precision
from tests.torch_fixtures import VOCAB, _random_batch, _tiny_config


def _step(model, opt, cfg: TrainConfig):
    """The trainer's step for ``model`` on the CPU, at a constant learning rate."""
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    use_amp, dtype, scaler = mixed_precision(cfg, torch.device("cpu"))
    return make_step(model, model, opt, sched, scaler, cfg, DistInfo(), torch.device("cpu"), use_amp, dtype)


def _batch() -> dict:
    feats, lens, targets = _random_batch()
    return {"feats": feats, "feat_lens": lens, "targets": targets}


def _curve(model, opt, cfg: TrainConfig, steps: int = 6) -> list[float]:
    """Losses of ``steps`` updates through the trainer's step on one fixed batch."""
    step, batch = _step(model, opt, cfg), _batch()
    return [float(step(batch, 1, 1)[0]["loss"]) for _ in range(steps)]


def test_fused_adamw_gives_the_loss_curve_of_plain_adamw():
    cfg = TrainConfig(lr=3e-3)
    torch.manual_seed(0)
    model = build_model(_tiny_config("do"), VOCAB).train()
    reference = copy.deepcopy(model)
    opt = make_optimizer(model.parameters(), cfg)
    assert opt.param_groups[0]["fused"] or opt.param_groups[0]["foreach"]  # not the per-parameter loop
    plain = torch.optim.AdamW(reference.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=False)
    fast, slow = _curve(model, opt, cfg), _curve(reference, plain, cfg)
    assert fast[-1] < fast[0]  # it learns
    torch.testing.assert_close(torch.tensor(fast), torch.tensor(slow), rtol=1e-4, atol=1e-5)
    # Parameters are not compared: Adam divides each gradient element by its own scale,
    # so elements whose gradient is rounding noise (e.g. attention key biases) move by +-lr either way.


def test_training_statistics_stay_on_the_device_until_logged():
    torch.manual_seed(0)
    model = build_model(_tiny_config("do"), VOCAB).train()
    cfg = TrainConfig()
    stats, grad_norm = _step(model, make_optimizer(model.parameters(), cfg), cfg)(_batch(), 1, 1)
    assert isinstance(grad_norm, float)
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in stats.values()), stats
