"""``dualasr train``: a plain PyTorch loop for SSO, MSO and DO models and their variants.

- Device picked automatically (CUDA, then Apple MPS, then CPU); mixed precision
  (bf16/fp16 autocast + GradScaler for fp16) on CUDA only.
- Distributed through ``torchrun``: DistributedDataParallel with NCCL on GPU and
  Gloo on CPU, one process per device, several nodes included; Lhotse's sampler
  shards batches over ranks; only rank 0 writes files.
- AdamW with linear warmup then either inverse-square-root decay (the
  Noam/ESPnet ``WarmupLR`` schedule) or linear decay to zero at the end of the
  last epoch; gradient clipping, gradient accumulation.
- One batch's forward, backward and optimizer update are one :class:`Step`,
  so another way of computing gradients replaces it without changing the loop.
- Non-finite losses or gradients are counted and the step skipped on every rank
  (the ranks agree through an all-reduce), never applied to the weights nor to
  BatchNorm's running statistics.
- Validation after each epoch; a checkpoint per epoch written atomically; the
  best ``average_best`` checkpoints by dev loss are kept and averaged at the end.
- Exact resume: a checkpoint holds model, optimizer, scheduler, scaler, the
  epoch and every RNG state; the sampler's order is a function of (seed, epoch),
  so a run killed during epoch ``e`` restarts epoch ``e`` from the checkpoint of
  ``e - 1`` and reproduces the uninterrupted run's losses. Temporary files a
  killed checkpoint write left behind are deleted when the run restarts.
- Safe checkpoints (:mod:`dualasr.model.checkpoint`): files hold tensors and
  plain data only (loaded with ``torch.load(weights_only=True)``, so loading one
  runs no code) and a SHA-256 checksum of their tensors, verified on every load.
- Seeds: variant ``name`` of study seed ``seed`` trains from
  ``dualasr.config.model_seed(seed, name)``, as ``dualasr study`` does.
- Metrics: ``metrics.csv`` (one row per ``log_every`` steps and per validation).

Output directory::

    tokens_<output>.json   tokenizers (ids fixed for the run)
    checkpoints/epoch<N>.pt, checkpoints/last.pt
    model.pt               average of the best checkpoints (used by decode/analyze)
    run.json               what the run is (dualasr.layout.RunInfo), written before model.pt
    metrics.csv
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from lhotse import CutSet
from torchjd.autojac import jac_to_grad, mtl_backward
from tqdm import tqdm

from dualasr.atomic import atomic_path, atomic_write_text, remove_stale_temporaries
from dualasr.config import DataConfig, TextConfig, TrainConfig, model_seed
from dualasr.data.checks import UnusableCutError, record_skipped, within_max_duration
from dualasr.data.manifest import Skipped, load_manifest, supervision
from dualasr.device import pick_device
from dualasr.layout import SUMMARY_FILE, RunInfo, default_label, write_run_info
from dualasr.model.asr import TaskLosses, build_model
from dualasr.model.checkpoint import MODEL_FILE, CheckpointError, load_checkpoint, save_atomic
from dualasr.model.config import ModelConfig
from dualasr.rundir import manifest_stamp, reuse_or_refuse, value_sha256
from dualasr.train.data import build_tokenizers, make_loader
from dualasr.train.mtl import all_reduce_mean, make_aggregator, make_weighting

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ environment


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistInfo:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend)
    return info


def wrap_distributed(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """The module the training loop calls: ``model`` itself in one process, else
    wrapped in DistributedDataParallel (gradients averaged over ranks in ``backward``;
    rank 0's weights and buffers broadcast to the others)."""
    if info.world_size <= 1:
        return model
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[info.local_rank] if device.type == "cuda" else None
    )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every RNG state as tensors and plain data (what ``weights_only`` loading
    accepts): numpy's ``(name, keys, pos, has_gauss, gauss)`` tuple becomes a
    dict with the uint32 keys as an int64 tensor."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    numpy = {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
             "has_gauss": has_gauss, "gauss": gauss}  # fmt: skip
    state = {"python": random.getstate(), "numpy": numpy, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def lr_lambda(schedule: str, warmup: int, total_steps: int = 0):
    """LR multiplier: ``step / warmup`` up to ``warmup``, then ``sqrt(warmup / step)``
    (``noam``) or a straight line from 1 at ``warmup`` to 0 at ``total_steps``
    (``linear``; 0 beyond)."""
    if schedule == "linear" and total_steps <= warmup:
        raise ValueError(f"train.schedule linear: {total_steps} steps in all, not more than warmup_steps {warmup}")

    def f(step: int) -> float:
        step = max(step, 1)
        if step < warmup:
            return step / warmup
        if schedule == "linear":
            return max(0.0, (total_steps - step) / (total_steps - warmup))
        return math.sqrt(warmup / step) if warmup else 1.0

    return f


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with the fused kernel (one op updates every parameter) where the
    parameters' device has one (CPU, CUDA and MPS in recent torch), else the
    multi-tensor one. The CPU default is a Python loop of about ten small ops
    per parameter tensor; fused gives the same update within float rounding."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except RuntimeError:  # no fused kernel for this device or torch
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)


def mixed_precision(cfg: TrainConfig, device: torch.device) -> tuple[bool, torch.dtype, torch.amp.GradScaler]:
    """Whether to train under autocast (``cfg.amp`` on CUDA only), in which
    dtype (bf16 where the GPU has it, else fp16), and the gradient scaler
    (enabled for fp16 only: bf16 has float32's exponent range)."""
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    return use_amp, amp_dtype, torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)


def count_steps(sampler, epochs: int, accum_grad: int) -> int:
    """Optimizer steps in ``epochs`` epochs, from the first epoch's batches (the
    sampler reads cut metadata only; later epochs differ by a batch or two, so
    the linear schedule may end a step or two early, at lr 0)."""
    sampler.set_epoch(1)
    return epochs * (sum(1 for _ in sampler) // accum_grad)


# ------------------------------------------------------------------ checkpoints


def check_same_config(ckpt: dict, path: Path, model_cfg: ModelConfig, train_cfg: TrainConfig) -> None:
    """Resuming with another architecture or optimisation set-up is an error naming the keys."""
    for name, now in (("model_config", model_cfg.model_dump()), ("train_config", train_cfg.model_dump())):
        then = ckpt.get(name, {})
        diff = sorted(k for k in set(now) | set(then) if now.get(k) != then.get(k))
        if diff:
            raise CheckpointError(
                f"{path}: saved with a different {name.replace('_', ' ')} "
                f"(keys {', '.join(diff)}); use a new output directory or restore the config"
            )


def average_checkpoints(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the models' floating-point weights (integer buffers
    such as BatchNorm's ``num_batches_tracked`` are taken from the last)."""
    avg: dict[str, torch.Tensor] = {}
    for path in paths:
        state = load_checkpoint(path)["model"]
        if avg and {k: v.shape for k, v in state.items()} != {k: v.shape for k, v in avg.items()}:
            raise CheckpointError(f"{path}: weights differ in names or shapes from {paths[0]}; cannot average")
        for k, v in state.items():
            if k not in avg:
                avg[k] = v.clone().double() if v.is_floating_point() else v.clone()
            elif v.is_floating_point():
                avg[k] += v.double()
            else:
                avg[k] = v.clone()
    ref = load_checkpoint(paths[-1])["model"]
    return {k: (v / len(paths)).to(ref[k].dtype) if ref[k].is_floating_point() else v for k, v in avg.items()}


# --------------------------------------------------------------------- the loop


class MetricsLog:
    """Training and validation statistics as a long-format CSV
    ``epoch,step,split,metric,value`` (rank 0 only): one layout whatever the
    model's outputs, easy to pivot for plots.

    On resume at epoch ``e``, rows a killed run wrote for epochs >= ``e`` are
    dropped first, so the log reads as one uninterrupted run.
    """

    HEADER = "epoch,step,split,metric,value\n"

    def __init__(self, path: Path, enabled: bool, resume_epoch: int = 1):
        self.path, self.enabled = path, enabled
        if not enabled:
            return
        kept = []
        if path.exists():
            kept = [ln for ln in path.read_text().splitlines(keepends=True)[1:]
                    if int(ln.split(",", 1)[0]) < resume_epoch]  # fmt: skip
        atomic_write_text(path, self.HEADER + "".join(kept), overwrite=True)

    def write(self, epoch: int, step: int, split: str, values: dict[str, float]) -> None:
        if self.enabled:
            with open(self.path, "a", newline="") as f:
                csv.writer(f, lineterminator="\n").writerows([epoch, step, split, k, f"{v:.6g}"] for k, v in sorted(values.items()))


def _all_finite(loss: torch.Tensor, info: DistInfo) -> bool:
    flag = torch.tensor([0.0 if torch.isfinite(loss).all() else 1.0], device=loss.device)
    if info.world_size > 1:
        dist.all_reduce(flag)
    return flag.item() == 0


@torch.no_grad()
def _restore_buffers(model: torch.nn.Module, saved: list[torch.Tensor]) -> None:
    for b, old in zip(model.buffers(), saved, strict=True):
        b.copy_(old)


def _to(batch: dict, device: torch.device) -> tuple:
    """The batch's tensors on ``device``; asynchronous copies from pinned memory on CUDA."""
    feats = batch["feats"].to(device, non_blocking=True)
    lens = batch["feat_lens"].to(device, non_blocking=True)
    targets = {o: (y.to(device, non_blocking=True), n.to(device, non_blocking=True))
               for o, (y, n) in batch["targets"].items()}  # fmt: skip
    return feats, lens, targets


@torch.no_grad()
def validate(model: torch.nn.Module, loader, device: torch.device, info: DistInfo) -> dict[str, float]:
    """Utterance-weighted mean of the loss statistics over the dev set (all ranks),
    and ``ter_ctc_<o>``: token error rate of the greedy CTC best path, per CTC output."""
    model.eval()
    sums: dict[str, float] = {}
    n = 0
    for batch in loader:
        feats, lens, targets = _to(batch, device)
        _, stats = model(feats, lens, targets)
        b = feats.size(0)
        for k, v in stats.items():
            sums[k] = sums.get(k, 0.0) + torch.as_tensor(v, dtype=torch.float64, device=device) * b
        n += b
    keys = sorted(sums)
    vec = torch.stack([sums[k] for k in keys] + [torch.tensor(float(n), dtype=torch.float64, device=device)])
    if info.world_size > 1:
        dist.all_reduce(vec)
    model.train()
    means = {k: (vec[i] / vec[-1]).item() for i, k in enumerate(keys)}
    # Mean edits over mean target length = total edits / total target tokens.
    for key in [k for k in means if k.startswith("ctc_edits_")]:
        o = key.removeprefix("ctc_edits_")
        means[f"ter_ctc_{o}"] = means.pop(key) / max(means.pop(f"ctc_ref_{o}"), 1e-12)
    return means


class Step:
    """One training batch: forward, backward, and every ``accum_grad`` batches
    the optimizer update (AMP loss scaling, gradient clipping, LR schedule).

    The loop hands every batch to a ``Step`` and never touches gradients, so
    another way of turning losses into gradients (e.g. aggregating per-task
    gradients on the shared encoder from ``DualASR.task_losses``) replaces
    :meth:`forward` and :meth:`backward` without changing the loop. Under DDP
    ``module`` is the wrapped model (gradients averaged over ranks in
    ``backward``) and ``model`` the bare one.

    A non-finite loss or gradient on any rank skips the update on every rank:
    the gradients gathered so far are dropped, BatchNorm's running statistics
    restored to what they were before the batch, and :attr:`skipped` counted.
    """

    def __init__(
        self, model: torch.nn.Module, module: torch.nn.Module, opt: torch.optim.Optimizer,
        sched: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler, cfg: TrainConfig,
        info: DistInfo, device: torch.device, use_amp: bool, amp_dtype: torch.dtype, skipped: int = 0,
    ):  # fmt: skip
        self.model, self.module, self.opt, self.sched, self.scaler = model, module, opt, sched, scaler
        self.cfg, self.info, self.device, self.use_amp, self.amp_dtype = cfg, info, device, use_amp, amp_dtype
        self.skipped = skipped  # batches skipped so far in the run (resumed from the checkpoint)

    def forward(self, feats: torch.Tensor, lens: torch.Tensor, targets: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted loss (scalar, in the graph) and the model's statistics."""
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            return self.module(feats, lens, targets)

    def backward(self, loss: torch.Tensor) -> None:
        """Add this batch's share of the gradients (``loss / accum_grad``, scaled for fp16)."""
        self.scaler.scale(loss / self.cfg.accum_grad).backward()

    def __call__(self, batch: dict, epoch: int, i: int) -> tuple[dict[str, float], float] | None:
        """Train on batch ``i`` (1-based) of ``epoch``: ``(stats, gradient norm)``
        when the weights were updated, None when gradients are accumulating or
        the batch was skipped."""
        feats, lens, targets = _to(batch, self.device)
        # The forward pass updates BatchNorm's running statistics: a skipped
        # step restores them (no NaN left in them; a few thousand numbers).
        buffers = [b.clone() for b in self.model.buffers()]
        loss, stats = self.forward(feats, lens, targets)
        if not _all_finite(loss, self.info):
            self._skip(buffers, "loss", epoch, i)
            return None
        self.backward(loss)
        if i % self.cfg.accum_grad:
            return None
        stats = {**stats, **self.finish_gradients()}
        self.scaler.unscale_(self.opt)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        if not _all_finite(grad_norm, self.info):
            self.scaler.update()  # lowers the fp16 loss scale after an overflow
            self._skip(buffers, "gradient", epoch, i)
            return None
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        self.after_update()
        return stats, float(grad_norm)

    def finish_gradients(self) -> dict[str, float]:
        """Once the batches of an update are backpropagated: make every
        parameter's ``.grad`` the update's gradient, identical on every rank
        (DDP already did); statistics of the step to log."""
        return {}

    def after_update(self) -> None:
        """After the optimizer step (what a step learns beside the model)."""

    def end_epoch(self) -> None:
        """At the end of each epoch."""

    def state(self) -> dict:
        """What besides the model and optimizer an exact resume needs (tensors and plain data)."""
        return {}

    def load_state(self, state: dict) -> None:
        """Restore what :meth:`state` returned."""

    def _skip(self, buffers: list[torch.Tensor], what: str, epoch: int, i: int) -> None:
        self.skipped += 1
        self.opt.zero_grad(set_to_none=True)
        _restore_buffers(self.model, buffers)
        log.warning("non-finite %s at epoch %d batch %d: step skipped (%d so far)", what, epoch, i, self.skipped)


def _all_reduce_grads(model: torch.nn.Module, world_size: int) -> None:
    """Average over the ranks what a backward outside DDP left in the parameters:
    ``.jac`` (a per-output Jacobian, torchjd) where present, else ``.grad``."""
    if world_size <= 1:
        return
    for p in model.parameters():
        t = getattr(p, "jac", p.grad)
        if t is not None:
            all_reduce_mean(t, world_size)


class PerTaskStep(Step):
    """A step whose :meth:`backward` needs each output's loss, not their sum:
    :meth:`forward` keeps the model's :class:`~dualasr.model.asr.TaskLosses`
    for it. The model is called unwrapped (DDP's hooks would average the
    summed loss's gradients), so subclasses average over the ranks themselves."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._task: TaskLosses | None = None

    def forward(self, feats: torch.Tensor, lens: torch.Tensor, targets: dict) -> tuple[torch.Tensor, dict[str, float]]:
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            self._task = self.model.task_losses(feats, lens, targets)
        return sum(self._task.losses.values()), self._task.stats


class AggregatedStep(PerTaskStep):
    """Jacobian descent on the shared encoder (torchjd, Quinton & Rey 2024):
    ``mtl_backward`` gives each output's head and decoder its own loss's gradient
    and stacks the per-output gradients of the shared parameters ``theta`` into a
    Jacobian ``J = [dL_surface/dtheta; dL_meaning/dtheta]`` (``.jac`` fields), which
    ``jac_to_grad`` turns into one gradient ``A(J)`` with the configured aggregator.

    Every shared feature tensor of the step is passed as ``features`` (one, or
    a list when the encoder hands several to the heads).

    torchjd differentiates with ``torch.autograd.grad``, so DDP's all-reduce
    hooks never fire: the model is called unwrapped, and each rank's
    Jacobians (and task-specific gradients) are averaged over the ranks before
    aggregating, so every rank aggregates the Jacobian of the global batch.
    With gradient accumulation the Jacobians add up over the batches and are
    aggregated once per update.

    fp16 (CUDA without bf16): the losses are scaled by the GradScaler's ``S``,
    so the aggregator sees ``S J``; the aggregators offered are positively
    homogeneous (``A(S J) = S A(J)``), so unscaling the result afterwards gives
    ``A(J)``. A non-finite Jacobian (an fp16 overflow) is not aggregated (the
    solvers fail on it): its row sum goes to ``.grad``, non-finite too, and the
    step is skipped as any other overflow.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.model.separation is not None:  # config refuses it too, with the variant named
            raise ValueError("gradient aggregation with a separation penalty: the penalty depends on both "
                             "outputs' own parameters, which torchjd's mtl_backward cannot attribute")
        self.aggregator = make_aggregator(self.cfg.mtl)

    def backward(self, loss: torch.Tensor) -> None:
        t, self._task = self._task, None
        losses = [self.scaler.scale(t.losses[o] / self.cfg.accum_grad) for o in self.model.outputs]
        mtl_backward(losses, features=t.shared_features)

    def finish_gradients(self) -> dict[str, float]:
        _all_reduce_grads(self.model, self.info.world_size)
        shared = [p for p in self.model.parameters() if hasattr(p, "jac")]
        if not all(torch.isfinite(p.jac).all() for p in shared):
            for p in shared:
                p.grad = p.jac.sum(0)
                del p.jac
            return {}
        weights = jac_to_grad(shared, self.aggregator)
        if weights is None:  # aggregators that weigh no rows (e.g. PCGrad's projections)
            return {}
        return {f"mtl_weight_{o}": float(w) for o, w in zip(self.model.outputs, weights, strict=True)}

    def _skip(self, buffers: list[torch.Tensor], what: str, epoch: int, i: int) -> None:
        for p in self.model.parameters():
            if hasattr(p, "jac"):
                del p.jac
        super()._skip(buffers, what, epoch, i)


class WeightedStep(PerTaskStep):
    """The model trained on ``L = sum_o lambda_o L_o`` with weights ``lambda_o``
    that a :class:`~dualasr.train.mtl.LossWeighting` changes during training
    (uncertainty, DWA, GradNorm). As in :class:`AggregatedStep` the model is
    called unwrapped (the weighting needs each output's loss) and the gradients
    averaged over the ranks here. The weights are logged as ``mtl_weight_<o>``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.weighting = make_weighting(self.cfg.mtl, self.model.outputs).to(self.device)

    def backward(self, loss: torch.Tensor) -> None:
        t, self._task = self._task, None
        losses = torch.stack([t.losses[o] for o in self.model.outputs])
        weighted = self.weighting.loss(losses, t.shared_features, self.info.world_size)
        if t.penalty is not None:  # the separation penalty keeps its own weight (model.separation.weight)
            weighted = weighted + t.penalty
        self.scaler.scale(weighted / self.cfg.accum_grad).backward()

    def finish_gradients(self) -> dict[str, float]:
        _all_reduce_grads(self.model, self.info.world_size)
        return dict(zip((f"mtl_weight_{o}" for o in self.model.outputs), self.weighting.weights(), strict=True))

    def after_update(self) -> None:
        self.weighting.step(self.info.world_size)

    def end_epoch(self) -> None:
        self.weighting.end_epoch(self.info.world_size)

    def state(self) -> dict:
        return self.weighting.state()

    def load_state(self, state: dict) -> None:
        self.weighting.load_state(state)

    def _skip(self, buffers: list[torch.Tensor], what: str, epoch: int, i: int) -> None:
        self.weighting.zero_grad(set_to_none=True)  # a skipped batch teaches the weights nothing either
        super()._skip(buffers, what, epoch, i)


def make_step(*args, **kwargs) -> Step:
    """The :class:`Step` for ``cfg.mtl`` (same arguments as :class:`Step`)."""
    step = Step(*args, **kwargs)
    mtl = step.cfg.mtl
    if mtl is None or (mtl.aggregator is None and mtl.weighting is None):
        return step
    if len(step.model.outputs) < 2:
        raise ValueError(f"train.mtl: gradient aggregation and loss weighting need a DO model; "
                         f"this model has the one output {step.model.outputs[0]}")
    return (AggregatedStep if mtl.aggregator else WeightedStep)(*args, **kwargs)


def train(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    train_manifest: Path,
    dev_manifest: Path,
    cmvn: dict,
    out_dir: Path,
    seed: int = 0,
    text: TextConfig | None = None,
    progress: bool = True,
    stop_after_epoch: int | None = None,
    data: DataConfig | None = None,
    name: str | None = None,
    label: str | None = None,
) -> Path:
    """Train variant ``name`` (default: the mode) of study seed ``seed``, from
    the training seed ``model_seed(seed, name)``; returns the path of the
    averaged ``model.pt``, written with ``run.json`` (:mod:`dualasr.layout`:
    name, ``label`` (default :func:`~dualasr.layout.default_label`), mode,
    outputs, language, ``seed``, model config) beside it.

    A finished run (``model.pt``) of the same manifests, CMVN, configs and seed
    is returned as is; a run directory holding a model or checkpoint of other
    inputs is refused (:class:`~dualasr.rundir.StaleOutputError`). Cuts longer than
    ``data.max_utterance_seconds`` are an error naming them, or with
    ``data.skip_invalid`` left out and listed in ``train.skipped.tsv``. ``stop_after_epoch``
    ends the process's work after that epoch, as a kill would (for tests and
    for splitting long runs).
    """
    out_dir = Path(out_dir)
    final = out_dir / MODEL_FILE
    info = init_distributed()
    text = text or TextConfig()
    data = data or DataConfig()
    name = name or model_cfg.mode
    label = label or default_label(name)
    inputs = {
        "train_manifest": manifest_stamp(train_manifest), "dev_manifest": manifest_stamp(dev_manifest),
        "cmvn": value_sha256(cmvn), "model": model_cfg.model_dump(), "train": train_cfg.model_dump(),
        "text": text.model_dump(), "seed": seed, "name": name, "usable_cuts": data.usable_cut_rule(),
    }  # fmt: skip
    if model_cfg.pretrained is not None:  # the weights trained from, not only their path
        from dualasr.model.pretrained import directory_identity

        inputs["pretrained"] = directory_identity(model_cfg.pretrained.path)
    partial, stale = [out_dir / "checkpoints" / "last.pt"], out_dir.glob("tokens_*.json")
    if reuse_or_refuse(final, inputs, partial, stale, write=info.main):
        return final
    device = pick_device(info.local_rank)
    train_seed = model_seed(seed, name)
    seed_everything(train_seed)

    train_cuts: CutSet = load_manifest(train_manifest, check_audio=False)
    dev_cuts: CutSet = load_manifest(dev_manifest, check_audio=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_cuts, dev_cuts = usable_cuts(train_manifest, train_cuts, dev_manifest, dev_cuts, data, out_dir, info)
    if info.main:
        build_tokenizers(train_cuts, model_cfg.outputs, text, out_dir)
    if info.world_size > 1:
        dist.barrier()
    tokenizers = build_tokenizers(train_cuts, model_cfg.outputs, text, out_dir)
    language = supervision(next(iter(train_cuts))).language

    model = build_model(model_cfg, {o: len(t) for o, t in tokenizers.items()}, tokenizers=tokenizers, language=language)
    model.set_cmvn(torch.tensor(cmvn["mean"]), torch.tensor(cmvn["std"]))
    model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    ddp_model = wrap_distributed(model, info, device)
    # Frozen pretrained layers (pretrained.train_layers) are left out of the optimizer.
    opt = make_optimizer((p for p in model.parameters() if p.requires_grad), train_cfg)
    pin = device.type == "cuda"
    train_loader = make_loader(
        train_cuts, tokenizers, train_cfg.max_duration, shuffle=True, seed=train_seed,
        num_buckets=train_cfg.num_buckets, num_workers=train_cfg.num_workers,
        world_size=info.world_size, rank=info.rank, input_kind=model.input_kind, pin_memory=pin,
    )  # fmt: skip
    dev_loader = make_loader(
        dev_cuts, tokenizers, train_cfg.max_duration, shuffle=False,
        num_buckets=train_cfg.num_buckets, world_size=info.world_size, rank=info.rank,
        input_kind=model.input_kind, pin_memory=pin,
    )  # fmt: skip
    linear = train_cfg.schedule == "linear"
    total_steps = count_steps(train_loader.sampler, train_cfg.epochs, train_cfg.accum_grad) if linear else 0
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(train_cfg.schedule, train_cfg.warmup_steps, total_steps))
    use_amp, amp_dtype, scaler = mixed_precision(train_cfg, device)

    ckpt_dir = out_dir / "checkpoints"
    start_epoch, step, history, skipped = 1, 0, [], 0
    last = ckpt_dir / "last.pt"
    if info.main:  # a process killed inside save_atomic left its temporary file
        stale = remove_stale_temporaries(ckpt_dir, "*.pt") + remove_stale_temporaries(out_dir, MODEL_FILE)
        if stale:
            log.info("removed %d temporary file(s) of an interrupted checkpoint write: %s",
                     len(stale), ", ".join(str(p) for p in stale))  # fmt: skip
    if last.exists():
        ckpt = load_checkpoint(last)
        check_same_config(ckpt, last, model_cfg, train_cfg)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        start_epoch, step = ckpt["epoch"] + 1, ckpt["step"]
        history, skipped = ckpt["history"], ckpt["skipped_steps"]
        set_rng_state(ckpt["rng"][info.rank] if isinstance(ckpt["rng"], list) else ckpt["rng"])
        if info.main:
            log.info("resumed %s at epoch %d (step %d)", out_dir, start_epoch, step)

    metrics = MetricsLog(out_dir / "metrics.csv", info.main, start_epoch)
    if info.main:
        log.info("%s: %s (%s model), %.2f M parameters, device %s, world %d", out_dir, name, model_cfg.mode,
                 n_params / 1e6, device, info.world_size)  # fmt: skip
    train_step = make_step(model, ddp_model, opt, sched, scaler, train_cfg, info, device, use_amp, amp_dtype, skipped)
    if last.exists():
        train_step.load_state(ckpt.get("mtl", {}))

    for epoch in range(start_epoch, train_cfg.epochs + 1):
        train_loader.sampler.set_epoch(epoch)
        bar = tqdm(desc=f"{out_dir.name} epoch {epoch}", unit="batch", disable=not (progress and info.main))
        t0, running, n_running = time.time(), {}, 0
        opt.zero_grad(set_to_none=True)
        for i, batch in enumerate(train_loader, 1):
            update = train_step(batch, epoch, i)
            if update is None:
                continue
            stats, grad_norm = update
            step += 1
            for k, v in stats.items():  # detached tensors: summed without a host sync
                running[k] = running.get(k, 0.0) + v
            n_running += 1
            bar.update()
            if step % train_cfg.log_every == 0:
                means = {k: float(v) / n_running for k, v in running.items()}
                bar.set_postfix(loss=f"{means['loss']:.2f}")
                metrics.write(epoch, step, "train", {"lr": sched.get_last_lr()[0], "grad_norm": grad_norm, **means})
                running, n_running = {}, 0
        bar.close()
        train_step.end_epoch()
        dev = validate(ddp_model, dev_loader, device, info)
        history.append({"epoch": epoch, "dev_loss": dev["loss"]})
        metrics.write(epoch, step, "dev", {"seconds": time.time() - t0, "skipped_steps": train_step.skipped, **dev})
        rngs = [None] * info.world_size
        if info.world_size > 1:
            dist.all_gather_object(rngs, rng_state())
        else:
            rngs = rng_state()
        if info.main:
            ckpt = {
                "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "scaler": scaler.state_dict(),
                "epoch": epoch, "step": step, "history": history, "skipped_steps": train_step.skipped,
                "rng": rngs, "model_config": model_cfg.model_dump(), "train_config": train_cfg.model_dump(),
                "tokenizers": {o: t.to_dict() for o, t in tokenizers.items()},
                "language": language, "name": name, "label": label, "mtl": train_step.state(),
            }  # fmt: skip
            save_atomic(ckpt, ckpt_dir / f"epoch{epoch}.pt")
            # last.pt is the same checkpoint: copy the file rather than hash and serialise it again.
            with atomic_path(last) as tmp:
                shutil.copyfile(ckpt_dir / f"epoch{epoch}.pt", tmp)
            _prune(ckpt_dir, history, train_cfg.average_best)
            log.info("epoch %d: dev loss %.3f (%s)", epoch, dev["loss"],
                     ", ".join(f"{k} {v:.3f}" for k, v in dev.items() if k.startswith(("acc", "ter"))))  # fmt: skip
        if info.world_size > 1:
            dist.barrier()
        if stop_after_epoch is not None and epoch >= stop_after_epoch and epoch < train_cfg.epochs:
            return last

    if info.main:
        run = RunInfo(name, model_cfg.mode, model_cfg.outputs, language, seed, label, model_cfg.model_dump())
        _finish(out_dir, history, train_cfg, run, n_params)
    if info.world_size > 1:
        dist.barrier()
    return final


def _finish(out_dir: Path, history: list[dict], train_cfg: TrainConfig, run: RunInfo, n_params: int) -> None:
    """Average the best checkpoints into ``model.pt``, after ``run.json`` (so a
    run with a model always has its identity) and with ``train_summary.json``."""
    ckpt_dir = out_dir / "checkpoints"
    best = sorted(history, key=lambda h: h["dev_loss"])[: train_cfg.average_best]
    paths = [ckpt_dir / f"epoch{h['epoch']}.pt" for h in sorted(best, key=lambda h: h["epoch"])]
    final_ckpt = load_checkpoint(ckpt_dir / "last.pt")
    final_ckpt["model"] = average_checkpoints(paths)
    final_ckpt["averaged_epochs"] = [h["epoch"] for h in best]
    for key in ("optimizer", "scheduler", "scaler", "rng"):
        final_ckpt.pop(key)
    write_run_info(out_dir, run)
    save_atomic(final_ckpt, out_dir / MODEL_FILE)
    summary = {
        "parameters": n_params, "epochs": train_cfg.epochs, "steps": final_ckpt["step"],
        "skipped_steps": final_ckpt["skipped_steps"], "averaged_epochs": final_ckpt["averaged_epochs"],
        "best_dev_loss": best[0]["dev_loss"],
    }  # fmt: skip
    atomic_write_text(out_dir / SUMMARY_FILE, json.dumps(summary, indent=1), overwrite=True)


def usable_cuts(
    train_manifest: Path, train_cuts: CutSet, dev_manifest: Path, dev_cuts: CutSet,
    data: DataConfig, out_dir: Path, info: DistInfo,
) -> tuple[CutSet, CutSet]:  # fmt: skip
    """The training and dev cuts within ``data.max_utterance_seconds``; the ones
    left out under ``data.skip_invalid`` are listed in ``out_dir/train.skipped.tsv``
    (every rank filters the same way; rank 0 writes the list)."""
    skipped: list[Skipped] = []
    kept = tuple(
        within_max_duration(cuts, data.max_utterance_seconds, str(path), data.skip_invalid, skipped)
        for path, cuts in ((train_manifest, train_cuts), (dev_manifest, dev_cuts))
    )
    if info.main:
        record_skipped(skipped, out_dir / "train.skipped.tsv", f"training {out_dir}")
    for path, cuts in zip((train_manifest, dev_manifest), kept, strict=True):
        if not len(cuts):
            raise UnusableCutError(f"{path}: no usable cut left (see {out_dir / 'train.skipped.tsv'})")
    return kept


def _prune(ckpt_dir: Path, history: list[dict], keep: int) -> None:
    """Delete epoch checkpoints that can no longer be among the best ``keep``."""
    best = {h["epoch"] for h in sorted(history, key=lambda h: h["dev_loss"])[:keep]}
    for h in history:
        p = ckpt_dir / f"epoch{h['epoch']}.pt"
        if h["epoch"] not in best and p.exists():
            p.unlink()
