"""Training throughput: audio-seconds trained per wall-second, the full loop
(Lhotse sampler + feature loading + collation + step) next to the bare step
(the trainer's own :class:`~dualasr.train.trainer.Step` on one cached batch:
forward, backward, clipping, optimizer update), side by side in one run.
A ratio full / bare near 1 means data loading is not the bottleneck.

    .venv/bin/python bench/train_throughput.py --config conf/demo.yaml --data runs/demo/data/en
    .venv/bin/python bench/train_throughput.py --config conf/demo.yaml --data runs/demo/data/en --threads 1 --before
    .venv/bin/python bench/train_throughput.py --config conf/paper.yaml --data runs/demo/data/en --steps 4 --max-duration 60
    .venv/bin/python bench/train_throughput.py --config conf/demo.yaml --data runs/demo/data/en --jobs 2
    .venv/bin/python bench/train_throughput.py --config conf/paper.yaml --data DIR --device cuda --max-duration 600

``--before`` also times the step as it was before the speed work (PyTorch's
default AdamW, a Python loop over the parameters on CPU; every statistic turned
into a Python float inside the step; relative-position attention with explicit
score and weight tensors), alternating rounds with today's step on copies of one
model and one batch, and prints the ratio.

``--jobs N`` also measures N training processes at once (as ``study.jobs``
runs models), summed, next to the one process of the same run.

``--device cuda`` (or ``mps``) runs where a GPU exists, with the trainer's mixed
precision (``train.amp``) and pinned-memory batches, and prints the step's
FLOPs (``torch.utils.flop_counter``) and the achieved TFLOP/s, from which an
epoch time follows for another batch size or corpus.

The corpus needs its features (`dualasr train` or `dualasr study` computes them).
"""

from __future__ import annotations

import argparse
import copy
import math
import multiprocessing
import statistics
import tempfile
import time
import types
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from dualasr.config import load_config, model_config
from dualasr.data.features import compute_features
from dualasr.data.manifest import load_manifest
from dualasr.device import pick_device
from dualasr.model.asr import build_model
from dualasr.model.layers import RelPositionMultiHeadAttention
from dualasr.study import threads_per_job
from dualasr.train.data import build_tokenizers, make_loader
from dualasr.train.trainer import DistInfo, _to, make_optimizer, make_step, mixed_precision

FRAME_S = 0.01  # fbank frame shift


def sync(device: torch.device) -> None:
    """Wait for the device's queue (timings of asynchronous GPU work)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def explicit_attention(self, x, pos_emb, mask):
    """``RelPositionMultiHeadAttention.forward`` before the speed work: score
    and weight tensors built one op at a time (the same function)."""
    b, t, _ = x.shape
    q = self.q(x).view(b, t, self.heads, self.d_k)
    k, v = self.project_kv(x)
    p = self.pos(pos_emb).view(1, -1, self.heads, self.d_k).transpose(1, 2)
    ac = torch.matmul((q + self.pos_bias_u).transpose(1, 2), k.transpose(-2, -1))
    bd = self.rel_shift(torch.matmul((q + self.pos_bias_v).transpose(1, 2), p.transpose(-2, -1)))
    scores = ((ac + bd) / math.sqrt(self.d_k)).masked_fill(~mask[:, None, None, :], torch.finfo(x.dtype).min)
    weights = torch.softmax(scores, dim=-1).masked_fill(~mask[:, None, None, :], 0.0)
    ctx = torch.matmul(self.attn_dropout(weights), v)
    return self.out(ctx.transpose(1, 2).reshape(b, t, -1))


def make_bench_step(model, cfg, device: torch.device, before: bool = False):
    """The trainer's step for ``model`` (constant learning rate); ``before``:
    with the optimizer and statistics of the step before the speed work."""
    if before:
        for m in model.modules():
            if isinstance(m, RelPositionMultiHeadAttention):
                m.forward = types.MethodType(explicit_attention, m)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    else:
        opt = make_optimizer(model.parameters(), cfg.train)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    use_amp, amp_dtype, scaler = mixed_precision(cfg.train, device)
    step = make_step(model, model, opt, sched, scaler, cfg.train, DistInfo(), device, use_amp, amp_dtype)

    def run(batch: dict) -> float:
        """One update; the audio seconds it consumed."""
        stats, _ = step(batch, 1, 1)
        if before:  # the model used to call .item() on every statistic in its forward
            for v in stats.values():
                float(v)
        return float(batch["feat_lens"].sum()) * FRAME_S

    return run


def timed(run, batches, device: torch.device) -> float:
    """Audio-seconds per wall-second over ``batches``."""
    sync(device)
    audio, t0 = 0.0, time.perf_counter()
    for b in batches:
        audio += run(b)
    sync(device)
    return audio / (time.perf_counter() - t0)


def step_flops(model, batch: dict, device: torch.device) -> int:
    """FLOPs of one forward + backward on ``batch`` (matmuls and convolutions)."""
    feats, lens, targets = _to(batch, device)
    with FlopCounterMode(display=False) as counter:
        loss, _ = model(feats, lens, targets)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def measure(args, threads: int | None = None, bare: bool = True) -> dict:
    """Full-loop (and bare-step) throughput of one process with ``threads`` torch threads."""
    if threads:
        torch.set_num_threads(threads)
    device = pick_device() if args.device == "auto" else torch.device(args.device)
    cfg = load_config(args.config)
    if args.max_duration:
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"max_duration": args.max_duration})})
    fbank = compute_features(args.data, splits=("train",), progress=False)
    cuts = load_manifest(fbank / "train.jsonl.gz", check_audio=False)
    mcfg = model_config(cfg, args.model)
    with tempfile.TemporaryDirectory() as tmp:
        toks = build_tokenizers(cuts, mcfg.outputs, cfg.text, Path(tmp))
    torch.manual_seed(0)
    model = build_model(mcfg, {o: len(t) for o, t in toks.items()}).to(device).train()
    reference = copy.deepcopy(model) if args.before and bare else None
    loader = make_loader(cuts, toks, cfg.train.max_duration, shuffle=True, num_buckets=cfg.train.num_buckets,
                         num_workers=cfg.train.num_workers, pin_memory=device.type == "cuda")  # fmt: skip
    out = {"params": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads(),
           "max_duration": cfg.train.max_duration, "device": str(device)}  # fmt: skip

    run = make_bench_step(model, cfg, device)
    batches = iter(loader)
    for _ in range(args.warmup):
        run(next(batches))
    out["full"] = timed(run, (next(batches) for _ in range(args.steps)), device)
    if not bare:
        return out
    cached = next(batches)
    out["cached_s"] = float(cached["feat_lens"].sum()) * FRAME_S
    out["bare"] = timed(run, [cached] * args.steps, device)
    out["flops"] = step_flops(model, cached, device)
    if reference is not None:
        # Alternate rounds so that whatever else the machine does weighs on both alike.
        old = make_bench_step(reference, cfg, device, before=True)
        for _ in range(args.warmup):
            old(cached)
        rounds = {"before": [], "now": []}
        for _ in range(args.rounds):
            rounds["before"].append(timed(old, [cached] * args.steps, device))
            rounds["now"].append(timed(run, [cached] * args.steps, device))
        out["before"] = {k: statistics.median(v) for k, v in rounds.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=Path("conf/demo.yaml"))
    ap.add_argument(
        "--data", type=Path, required=True, help="corpus dir with cuts_{train,dev,test}.jsonl.gz"
    )
    ap.add_argument("--model", default="do", choices=["sso", "mso", "do"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument(
        "--max-duration",
        type=float,
        help="batch seconds (default: the config's; conf/paper.yaml's 600 s is for a GPU and exhausts 24 GB on a CPU)",
    )
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps, or auto (the trainer's choice)")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    ap.add_argument("--before", action="store_true",
                    help="also time the step as it was before the speed work, alternating with today's")  # fmt: skip
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds of --steps steps for --before")
    ap.add_argument(
        "--jobs", type=int, default=1,
        help="also run the full loop in this many processes at once (cores // jobs threads each), "
        "as `study.jobs` trains models, and compare their summed throughput with one process",
    )  # fmt: skip
    args = ap.parse_args()
    one = measure(args, args.threads)
    print(f"config {args.config}  model {args.model}  {one['params'] / 1e6:.2f} M parameters  device {one['device']}  "
          f"threads {one['threads']}  max_duration {one['max_duration']} s")  # fmt: skip
    print(f"full loop : {one['full']:8.1f} audio-s / wall-s")
    print(f"bare step : {one['bare']:8.1f} audio-s / wall-s  (one cached batch of {one['cached_s']:.0f} s)")
    print(f"ratio full / bare: {one['full'] / one['bare']:.2f}")
    step_s = one["cached_s"] / one["bare"]
    print(f"step FLOPs (forward + backward): {one['flops'] / 1e9:.1f} GFLOP per {one['cached_s']:.0f} s batch, "
          f"{one['flops'] / step_s / 1e12:.3f} TFLOP/s achieved")  # fmt: skip
    if "before" in one:
        b = one["before"]
        print(f"bare step before the speed work: {b['before']:8.1f} audio-s / wall-s, today: {b['now']:8.1f} "
              f"(medians of {args.rounds} alternating rounds)  speed-up x{b['now'] / b['before']:.2f}")  # fmt: skip
    if args.jobs > 1:
        threads = threads_per_job(args.jobs)
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(args.jobs) as pool:
            runs = pool.starmap(measure, [(args, threads, False)] * args.jobs)
        total = sum(r["full"] for r in runs)
        each = ", ".join(f"{r['full']:.1f}" for r in runs)
        print(f"{args.jobs} processes x {threads} thread(s), full loop at once: {total:8.1f} audio-s / wall-s ({each})")
        print(f"ratio {args.jobs} processes / one process: {total / one['full']:.2f}")


if __name__ == "__main__":
    main()
