"""Training throughput: audio-seconds trained per wall-second, the full loop
(Lhotse sampler + feature loading + collation + step) next to the bare model
step (forward + backward + AdamW on one cached batch), side by side in one run.
A ratio full / bare near 1 means data loading is not the bottleneck.

    .venv/bin/python bench/train_throughput.py --config conf/demo.yaml --data runs/demo/data/en
    .venv/bin/python bench/train_throughput.py --config conf/paper.yaml --data runs/demo/data/en --steps 4 --max-duration 60

The corpus needs its features (`dualasr train` or `dualasr study` computes them).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from dualasr.config import load_config, model_config
from dualasr.data.features import compute_features
from dualasr.data.manifest import load_manifest
from dualasr.model.asr import build_model
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
    args = ap.parse_args()
    cfg = load_config(args.config)
    if args.max_duration:
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"max_duration": args.max_duration})})
    fbank = compute_features(args.data, splits=("train",))
    cuts = load_manifest(fbank / "train.jsonl.gz", check_audio=False)
    mcfg = model_config(cfg, args.model)
    with tempfile.TemporaryDirectory() as tmp:
        toks = build_tokenizers(cuts, mcfg.outputs, cfg.text.korean_unit, Path(tmp))
    model = build_model(mcfg, {o: len(t) for o, t in toks.items()}).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    n_params = sum(p.numel() for p in model.parameters())
    loader = make_loader(cuts, toks, cfg.train.max_duration, shuffle=True, num_buckets=cfg.train.num_buckets,
                         num_workers=cfg.train.num_workers)  # fmt: skip

    batches = iter(loader)
    for _ in range(args.warmup):
        step(model, opt, next(batches))
    audio, t0 = 0.0, time.perf_counter()
    for _ in range(args.steps):
        audio += step(model, opt, next(batches))
    full = audio / (time.perf_counter() - t0)

    cached = next(batches)
    audio, t0 = 0.0, time.perf_counter()
    for _ in range(args.steps):
        audio += step(model, opt, cached)
    bare = audio / (time.perf_counter() - t0)

    print(f"config {args.config}  model {args.model}  {n_params / 1e6:.2f} M parameters  "
          f"threads {torch.get_num_threads()}  max_duration {cfg.train.max_duration} s")  # fmt: skip
    print(f"full loop : {full:8.1f} audio-s / wall-s")
    print(
        f"bare step : {bare:8.1f} audio-s / wall-s  (one cached batch of {float(cached['feat_lens'].sum()) * FRAME_S:.0f} s)"
    )
    print(f"ratio full / bare: {full / bare:.2f}")


if __name__ == "__main__":
    main()
