"""A training :class:`~dualasr.train.trainer.Step` for a bare model and a fixed
batch, shared by the MTL tests and their 2-process DDP worker."""

from __future__ import annotations

import torch

from dualasr.config import MTLConfig, TrainConfig
from dualasr.train.trainer import DistInfo, make_step


def tiny_step(model: torch.nn.Module, mtl: dict | None, info: DistInfo | None = None, lr: float = 0.1,
              optimizer=torch.optim.SGD, **train):  # fmt: skip
    """The step ``train`` would build for ``train.mtl: mtl`` around ``model``
    (constant learning rate; no AMP: CPU), with ``optimizer``."""
    cfg = TrainConfig(mtl=MTLConfig(**mtl) if mtl is not None else None, **train)
    opt = optimizer(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    device = next(model.parameters()).device
    return make_step(model, model, opt, sched, scaler, cfg, info or DistInfo(), device, False, torch.float32)


def as_batch(feats, lens, targets) -> dict:
    """The collated form the training loop hands to a step."""
    return {"feats": feats, "feat_lens": lens, "targets": targets}
