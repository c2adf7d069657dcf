"""Seconds per training step of a DO model, plain next to every ``train.mtl``
aggregator and weighting, side by side in one run on one fixed random batch
(the trainer's own step: forward, backward, clipping, AdamW).

    .venv/bin/python bench/train_mtl_cost.py --config conf/demo.yaml
    .venv/bin/python bench/train_mtl_cost.py --config conf/demo.yaml --steps 5 --batch 16 --seconds 4

Aggregation computes one gradient per output through the encoder (a Jacobian
of two rows) and solves a small problem on it; weightings cost what they learn
from (GradNorm: one backward per output down to the shared features).
"""

from __future__ import annotations

import argparse
import time

import torch

from dualasr.config import MTLConfig, load_config, model_config
from dualasr.model.asr import build_model
from dualasr.train.mtl import AGGREGATORS
from dualasr.train.trainer import DistInfo, make_step

VOCAB = {"surface": 40, "meaning": 40}


def fixed_batch(n: int, seconds: float, tokens_per_second: float = 12.0) -> dict:
    g = torch.Generator().manual_seed(0)
    frames = int(seconds * 100)
    lens = torch.full((n,), frames)
    targets = {}
    for o, v in VOCAB.items():
        t = max(1, int(seconds * tokens_per_second))
        targets[o] = (torch.randint(1, v - 1, (n, t), generator=g), torch.full((n,), t))
    return {"feats": torch.randn(n, frames, 80, generator=g), "feat_lens": lens, "targets": targets}


def seconds_per_step(cfg, mtl: dict | None, batch: dict, steps: int, train_cfg) -> float:
    torch.manual_seed(0)
    model = build_model(cfg, VOCAB)
    tcfg = train_cfg.model_copy(update={"mtl": MTLConfig(**mtl) if mtl else None, "accum_grad": 1})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    step = make_step(model, model, opt, sched, scaler, tcfg, DistInfo(), torch.device("cpu"), False, torch.float32)
    step(batch, 1, 1)  # warm-up (allocations, solver set-up)
    t0 = time.perf_counter()
    for _ in range(steps):
        step(batch, 1, 1)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="conf/demo.yaml")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8, help="utterances per batch")
    ap.add_argument("--seconds", type=float, default=4.0, help="seconds per utterance")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    cfg = model_config(config, "do")
    batch = fixed_batch(args.batch, args.seconds)
    methods = [("plain", None)] + [(a, {"aggregator": a}) for a in sorted(AGGREGATORS)]
    methods += [(w, {"weighting": w}) for w in ("uncertainty", "dwa", "gradnorm", "famo")]
    print(f"DO model of {args.config}, batch {args.batch} x {args.seconds:g} s, {args.threads} thread(s), "
          f"{args.steps} steps each")  # fmt: skip
    base = None
    for name, mtl in methods:
        s = seconds_per_step(cfg, mtl, batch, args.steps, config.train)
        base = base or s
        print(f"{name:12s} {s:7.3f} s/step  x{s / base:.2f}")


if __name__ == "__main__":
    main()
