"""Multi-task gradients for DO models (``train.mtl``): gradient aggregation on
the shared encoder with torchjd, and loss weightings that change during training.

Both act on the per-output losses ``L_o`` of
:meth:`dualasr.model.asr.DualASR.task_losses` (``L_o = w[ctc_o] CTC_o + w[att_o] ATT_o``);
the training step that uses them is in :mod:`dualasr.train.trainer`
(:class:`~dualasr.train.trainer.AggregatedStep`, :class:`~dualasr.train.trainer.WeightedStep`).

Under DDP every quantity a weighting learns from (losses, gradient norms) is
averaged over the ranks first, so the weights stay identical on every rank and
equal those of one process on the global batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torchjd import aggregation
from torchjd.scalarization import UW

from dualasr.config import MTLConfig

#: torchjd aggregator per ``train.mtl.aggregator`` name (torchjd's defaults
#: unless the config sets one of their constants).
AGGREGATORS = {
    "upgrad": lambda cfg: aggregation.UPGrad(),
    "pcgrad": lambda cfg: aggregation.PCGrad(),
    "mgda": lambda cfg: aggregation.MGDA(),
    "cagrad": lambda cfg: aggregation.CAGrad(c=cfg.cagrad_c),
    "alignedmtl": lambda cfg: aggregation.AlignedMTL(),
    "imtlg": lambda cfg: aggregation.IMTLG(),
    "gradvac": lambda cfg: aggregation.GradVac(),
    "mean": lambda cfg: aggregation.Mean(),
    "sum": lambda cfg: aggregation.Sum(),
}


def make_aggregator(cfg: MTLConfig) -> aggregation.Aggregator:
    return AGGREGATORS[cfg.aggregator](cfg)


def all_reduce_mean(t: Tensor, world_size: int) -> Tensor:
    """``t`` averaged over the ranks, in place (``t`` itself in one process)."""
    if world_size > 1:
        dist.all_reduce(t)
        t.div_(world_size)
    return t


class LossWeighting(nn.Module):
    """Per-output loss weights that change during training.

    :meth:`loss` turns the losses ``(outputs,)`` into the scalar to differentiate;
    :meth:`step` updates what the weighting learns after the model's optimizer
    step; :meth:`end_epoch` closes an epoch. :meth:`state` / :meth:`load_state`
    hold everything needed for an exact resume as tensors and plain data.
    """

    def __init__(self, outputs: tuple[str, ...]):
        super().__init__()
        self.outputs = outputs

    def loss(self, losses: Tensor, features: list[Tensor], world_size: int) -> Tensor:
        raise NotImplementedError

    def weights(self) -> Tensor:
        """The current weight of each output's loss, ``(outputs,)``."""
        raise NotImplementedError

    def step(self, world_size: int) -> None:
        """After the model's update (default: nothing learned)."""

    def end_epoch(self, world_size: int) -> None:
        """At the end of each epoch (default: nothing)."""

    #: The Adam of the weights a weighting learns, if it learns any (saved with its state).
    opt: torch.optim.Optimizer | None = None

    def state(self) -> dict:
        return {"module": self.state_dict()} | ({"optimizer": self.opt.state_dict()} if self.opt else {})

    def load_state(self, state: dict) -> None:
        self.load_state_dict(state["module"])
        if self.opt:
            self.opt.load_state_dict(state["optimizer"])


class Uncertainty(LossWeighting):
    r"""Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018, eq. 7 with
    learnable log-variances ``s_o = log sigma_o^2``), torchjd's ``UW``::

        L = sum_o  1/2 exp(-s_o) L_o  +  1/2 s_o          (weight of L_o: 1/2 exp(-s_o))

    ``s_o`` start at 0 and are learned by their own Adam (``train.mtl.weight_lr``,
    no weight decay), their gradients averaged over the ranks.
    """

    def __init__(self, outputs: tuple[str, ...], lr: float):
        super().__init__(outputs)
        self.uw = UW(len(outputs))
        self.opt = torch.optim.Adam(self.uw.parameters(), lr=lr)

    def loss(self, losses: Tensor, features: list[Tensor], world_size: int) -> Tensor:
        return self.uw(losses)

    def weights(self) -> Tensor:
        return 0.5 * torch.exp(-self.uw.log_var.detach())

    def step(self, world_size: int) -> None:
        all_reduce_mean(self.uw.log_var.grad, world_size)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)


class DWA(LossWeighting):
    r"""Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019, eq. 7)::

        lambda_o(t) = K exp(r_o(t-1) / T) / sum_k exp(r_k(t-1) / T),   r_o(t-1) = L_o(t-1) / L_o(t-2)

    ``L_o(t)`` the mean loss of output ``o`` over the batches of epoch ``t``
    (averaged over the ranks), ``K`` the number of outputs, ``T`` the temperature
    (``train.mtl.dwa_temperature``); weights 1 for the first two epochs.
    torchjd's ``DWA`` computes the same weights, but keeps its epoch means per
    process and in private attributes: here they are averaged over the ranks and
    saved in the checkpoint.
    """

    def __init__(self, outputs: tuple[str, ...], temperature: float):
        super().__init__(outputs)
        self.temperature = temperature
        n = len(outputs)
        self.register_buffer("epoch_sum", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("epoch_batches", torch.zeros((), dtype=torch.long))
        # Mean losses of the last two finished epochs, older first; batches 0: not yet.
        self.register_buffer("history", torch.zeros(2, n, dtype=torch.float64))
        self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.long))

    def weights(self) -> Tensor:
        if self.epochs_seen < 2:
            return torch.ones(len(self.outputs), device=self.history.device)
        rates = self.history[1] / self.history[0]
        return (len(self.outputs) * torch.softmax(rates / self.temperature, 0)).float()

    def loss(self, losses: Tensor, features: list[Tensor], world_size: int) -> Tensor:
        # Summed on this rank; averaged over the ranks once per epoch (end_epoch),
        # not with a collective on every batch (every rank sees as many batches).
        self.epoch_sum += losses.detach().double()
        self.epoch_batches += 1
        return (self.weights().to(losses.dtype) * losses).sum()

    def end_epoch(self, world_size: int) -> None:
        if self.epoch_batches == 0:
            return
        mean = all_reduce_mean(self.epoch_sum.clone(), world_size) / self.epoch_batches
        self.history = torch.stack([self.history[1], mean])
        self.epochs_seen += 1
        self.epoch_sum.zero_()
        self.epoch_batches.zero_()


class GradNorm(LossWeighting):
    r"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018, eqs. 1-2).

    Weights ``w_o`` (start 1) scale the losses, ``L = sum_o w_o L_o``. At every
    step, with ``G_o = ||d(w_o L_o)/dh||_2`` the gradient norm at the shared
    encoder features ``h`` (every feature tensor of the step, over the global
    batch), ``r_o = Ltilde_o / mean_k Ltilde_k`` the relative inverse training
    rate, ``Ltilde_o = L_o(t) / L_o(0)``::

        L_grad = sum_o | G_o - mean_k(G_k) * r_o^alpha |     (target held constant)

    is minimised over ``w`` alone by Adam (``train.mtl.weight_lr``), then the
    weights are renormalised to sum to the number of outputs. ``alpha`` is
    ``train.mtl.gradnorm_alpha``. The paper takes ``G`` at the last shared
    layer's weights; the shared features stand in for them (as LibMTL's
    ``rep_grad``): one backward through the heads per output, not through the encoder.

    Under DDP each rank holds its share ``h_r`` of the features and the global
    loss is the mean of the ranks' losses, so
    ``G_o^2 = sum_r ||d(w_o L_o,r)/dh_r||^2 / world^2`` exactly.
    """

    def __init__(self, outputs: tuple[str, ...], alpha: float, lr: float):
        super().__init__(outputs)
        self.alpha = alpha
        n = len(outputs)
        self.w = nn.Parameter(torch.ones(n))
        self.opt = torch.optim.Adam([self.w], lr=lr)
        self.register_buffer("initial", torch.zeros(n))  # L_o(0); zeros until the first step

    def weights(self) -> Tensor:
        return self.w.detach().clone()

    def loss(self, losses: Tensor, features: list[Tensor], world_size: int) -> Tensor:
        norms_sq = []
        for loss_o in losses:
            grads = torch.autograd.grad(loss_o, features, retain_graph=True)
            norms_sq.append(sum(g.float().pow(2).sum() for g in grads))
        norms = all_reduce_mean(torch.stack(norms_sq), world_size).div(world_size).sqrt()
        current = all_reduce_mean(losses.detach().float().clone(), world_size)
        if not self.initial.any():
            self.initial.copy_(current)
        ratio = current / self.initial
        target = (self.w.detach() * norms).mean() * (ratio / ratio.mean()) ** self.alpha
        grad_loss = (self.w * norms - target).abs().sum()
        self.w.grad = torch.autograd.grad(grad_loss, self.w)[0]
        return (self.w.detach().to(losses.dtype) * losses).sum()

    def step(self, world_size: int) -> None:
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            self.w.mul_(len(self.outputs) / self.w.sum())


class FAMO(LossWeighting):
    r"""FAMO, Fast Adaptive Multitask Optimization (Liu, Liu, Jin, Stone & Liu,
    NeurIPS 2023, Algorithm 1). With logits ``xi`` (start 0), ``z = softmax(xi)``
    and the losses ``L_o`` of the global batch::

        L = c sum_o z_o log(L_o + eps),   c = (sum_o z_o / (L_o + eps))^-1  (held constant)

    whose gradient is ``sum_o w_o grad L_o`` with ``w_o = c z_o / (L_o + eps)``: a
    convex combination of the per-output gradients that decreases every loss at
    about the same relative rate. The logits learn from how much each log-loss
    fell across an update, ``delta_o = log L_o(t-1) - log L_o(t)``: ``xi`` takes an
    Adam step (``train.mtl.weight_lr``, weight decay ``train.mtl.famo_gamma``)
    along ``J_softmax(xi)^T delta``.

    ``L_o(t)`` is measured on step ``t``'s batch before its update, as LibMTL's
    FAMO does, not on step ``t - 1``'s batch recomputed after it (the official
    code and torchjd's ``FAMO``): no second forward pass per step, which would
    cost a third of the step on this model, at the price of a noisier ``delta``.
    Own implementation rather than torchjd's scalarizer because the weights
    must come from the global batch under DDP (every rank applies the same
    ``w``; the loss a rank differentiates is ``sum_o w_o L_o,r``) and the state
    must go into the checkpoint for an exact resume.
    """

    EPS = 1e-8

    def __init__(self, outputs: tuple[str, ...], lr: float, gamma: float):
        super().__init__(outputs)
        n = len(outputs)
        self.xi = nn.Parameter(torch.zeros(n))
        self.opt = torch.optim.Adam([self.xi], lr=lr, weight_decay=gamma)
        self.register_buffer("previous", torch.zeros(n))  # log(L(t-1) + eps) of the global batch
        self.register_buffer("has_previous", torch.zeros((), dtype=torch.bool))
        self.register_buffer("last_weights", torch.ones(n) / n)

    def weights(self) -> Tensor:
        return self.last_weights.clone()

    def loss(self, losses: Tensor, features: list[Tensor], world_size: int) -> Tensor:
        current = all_reduce_mean(losses.detach().float().clone(), world_size)
        log_now = (current + self.EPS).log()
        if self.has_previous:
            z = torch.softmax(self.xi, 0)
            self.xi.grad = torch.autograd.grad(z, self.xi, grad_outputs=self.previous - log_now)[0]
        # A non-finite loss (its step is skipped) must not become the next step's reference.
        self.previous.copy_(torch.where(torch.isfinite(log_now).all(), log_now, self.previous))
        self.has_previous.fill_(True)
        z = torch.softmax(self.xi.detach(), 0)
        inverse = z / (current + self.EPS)
        self.last_weights.copy_(inverse / inverse.sum())  # c z_o / (L_o + eps)
        return (self.last_weights.to(losses.dtype) * losses).sum()

    def step(self, world_size: int) -> None:
        if self.xi.grad is not None:  # from the second update on
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)


def make_weighting(cfg: MTLConfig, outputs: tuple[str, ...]) -> LossWeighting:
    if cfg.weighting == "uncertainty":
        return Uncertainty(outputs, cfg.weight_lr)
    if cfg.weighting == "dwa":
        return DWA(outputs, cfg.dwa_temperature)
    if cfg.weighting == "gradnorm":
        return GradNorm(outputs, cfg.gradnorm_alpha, cfg.weight_lr)
    if cfg.weighting == "famo":
        return FAMO(outputs, cfg.weight_lr, cfg.famo_gamma)
    raise ValueError(f"train.mtl.weighting: {cfg.weighting!r} is not implemented")
