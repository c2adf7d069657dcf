"""Training throughput: audio-seconds trained per wall-second, the full loop
(Lhotse sampler + feature loading + collation + step) next to the bare model
step (forward + backward + AdamW on one cached batch), side by side in one run.
A ratio full / bare near 1 means data loading is not the bottleneck.

    .venv/bin/python bench/train_throughput.py --config conf/demo.yaml --data runs/demo/data/en
    .venv/bin/python bench/train_throughput.py --config conf/paper.yaml --data runs/demo/data/en --steps 4 --max-duration 60
    .venv/bin/python bench/train_throughput.py --config conf/demo.yaml --data runs/demo/data/en --jobs 2

``--jobs N`` also measures N training processes at once (as ``study.jobs``
runs models), summed, next to the one process of the same run.

The corpus needs its features (`dualasr train` or `dualasr study` computes them).
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

import torch

from dualasr.config import load_config, model_config
from dualasr.data.features import compute_features
from dualasr.data.manifest import load_manifest
from dualasr.model.asr import build_model
from dualasr.study import threads_per_job
from dualasr.train.data import build_tokenizers, make_loader

FRAME_S = 0.01  # fbank frame shift


def step(model, opt, batch) -> float:
    """One optimisation step; returns the audio seconds it consumed."""
    loss, _ = model(batch["feats"], batch["feat_lens"], batch["targets"])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(batch["feat_lens"].sum()) * FRAME_S


def measure(args, threads: int | None = None, bare: bool = True) -> dict:
    """Full-loop (and bare-step) throughput of one process with ``threads`` torch threads."""
    if threads:
        torch.set_num_threads(threads)
    cfg = load_config(args.config)
    if args.max_duration:
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"max_duration": args.max_duration})})
    fbank = compute_features(args.data, splits=("train",), progress=False)
    cuts = load_manifest(fbank / "train.jsonl.gz", check_audio=False)
    mcfg = model_config(cfg, args.model)
    with tempfile.TemporaryDirectory() as tmp:
        toks = build_tokenizers(cuts, mcfg.outputs, cfg.text, Path(tmp))
    model = build_model(mcfg, {o: len(t) for o, t in toks.items()}).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loader = make_loader(cuts, toks, cfg.train.max_duration, shuffle=True, num_buckets=cfg.train.num_buckets,
                         num_workers=cfg.train.num_workers)  # fmt: skip
    out = {"params": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads(),
           "max_duration": cfg.train.max_duration}  # fmt: skip

    batches = iter(loader)
    for _ in range(args.warmup):
        step(model, opt, next(batches))
    audio, t0 = 0.0, time.perf_counter()
    for _ in range(args.steps):
        audio += step(model, opt, next(batches))
    out["full"] = audio / (time.perf_counter() - t0)
    if bare:
        cached = next(batches)
        audio, t0 = 0.0, time.perf_counter()
        for _ in range(args.steps):
            audio += step(model, opt, cached)
        out["bare"] = audio / (time.perf_counter() - t0)
        out["cached_s"] = float(cached["feat_lens"].sum()) * FRAME_S
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
    ap.add_argument(
        "--jobs", type=int, default=1,
        help="also run the full loop in this many processes at once (cores // jobs threads each), "
        "as `study.jobs` trains models, and compare their summed throughput with one process",
    )  # fmt: skip
    args = ap.parse_args()
    one = measure(args)
    print(f"config {args.config}  model {args.model}  {one['params'] / 1e6:.2f} M parameters  "
          f"threads {one['threads']}  max_duration {one['max_duration']} s")  # fmt: skip
    print(f"full loop : {one['full']:8.1f} audio-s / wall-s")
    print(f"bare step : {one['bare']:8.1f} audio-s / wall-s  (one cached batch of {one['cached_s']:.0f} s)")
    print(f"ratio full / bare: {one['full'] / one['bare']:.2f}")
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
