"""Cost of a separation penalty: parameters and seconds per training step of the
demo-size DO with task-specific encoder blocks, without a penalty and with each
kind, side by side in one run.

    .venv/bin/python bench/separation_cost.py
    .venv/bin/python bench/separation_cost.py --config conf/demo.yaml --task-specific-layers 2 --rounds 5

One step = forward + backward + AdamW on one cached batch of random features
shaped like a demo batch (``--utts`` utterances of ``--seconds``, i.e.
``train.max_duration`` 20 s). The variants take turns, round after round, so
load from other processes on the machine falls on all of them alike; the table
gives the median and the minimum over rounds of the mean step time in each
round. Under load the step times vary by more than the penalty costs, so the
penalty is also timed alone (forward + backward on encoder outputs of the
batch's shape, median of many repetitions).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dualasr.config import load_config, model_config
from dualasr.model import ModelConfig, build_model
from dualasr.model.similarity import separation_penalty

FRAME_S = 0.01  # fbank frame shift
VOCAB = {"surface": 40, "meaning": 40}  # English characters + blank, sos/eos


def batch(utts: int, seconds: float, n_mels: int, chars_per_s: float = 12.0) -> tuple:
    g = torch.Generator().manual_seed(0)
    frames = int(seconds / FRAME_S)
    lens = torch.tensor([frames - 17 * i for i in range(utts)])  # ragged, so padding exists
    feats = torch.randn(utts, frames, n_mels, generator=g)
    n_tok = int(seconds * chars_per_s)
    targets = {
        o: (torch.randint(1, v - 1, (utts, n_tok), generator=g), torch.full((utts,), n_tok))
        for o, v in VOCAB.items()
    }
    return feats, lens, targets


def seconds_per_step(model, opt, data, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        loss, _ = model(*data)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return (time.perf_counter() - start) / steps


def penalty_alone(kind: str, lens: torch.Tensor, d: int, reps: int = 200) -> float:
    """Median seconds of forward + backward of the penalty on (batch, frames, d)
    encoder outputs with the batch's valid frames after x4 subsampling."""
    enc_lens = lens // 4
    mask = torch.arange(int(enc_lens.max()))[None] < enc_lens[:, None]
    h_s = torch.randn(*mask.shape, d, requires_grad=True)
    h_m = torch.randn(*mask.shape, d, requires_grad=True)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        separation_penalty(kind, h_s, h_m, mask).backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="conf/demo.yaml")
    ap.add_argument("--task-specific-layers", type=int, default=2)
    ap.add_argument("--weight", type=float, default=10.0)
    ap.add_argument("--utts", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=2.5)
    ap.add_argument("--steps", type=int, default=3, help="steps per variant per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    base = model_config(load_config(args.config), "do").model_dump()
    base["encoder"]["task_specific_layers"] = args.task_specific_layers
    variants = {"none": None, "orthogonality": "orthogonality", "cka": "cka"}
    runs = {}
    for name, kind in variants.items():
        sep = {"kind": kind, "weight": args.weight} if kind else None
        torch.manual_seed(0)
        model = build_model(ModelConfig(**{**base, "separation": sep}), VOCAB).train()
        runs[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-4))
    data = batch(args.utts, args.seconds, base["n_mels"])
    for model, opt in runs.values():  # warm-up: allocator, kernels
        seconds_per_step(model, opt, data, 1)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, (model, opt) in runs.items():
            times[name].append(seconds_per_step(model, opt, data, args.steps))

    n_params = {name: sum(p.numel() for p in m.parameters()) for name, (m, _) in runs.items()}
    ref = statistics.median(times["none"])
    valid = int((data[1] // 4).sum())  # about the valid encoder frames after x4 subsampling
    print(
        f"{args.config} DO, task_specific_layers={args.task_specific_layers}, "
        f"{args.utts} x {args.seconds} s per batch (~{valid} valid encoder frames), "
        f"{args.threads} thread(s), {args.rounds} rounds x {args.steps} steps"
    )
    print(
        f"{'penalty':<14} {'params':>10} {'extra':>6} {'s/step med':>11} {'min':>7} "
        f"{'vs none':>8} {'penalty alone':>14}"
    )
    for name, kind in variants.items():
        t = statistics.median(times[name])
        extra = n_params[name] - n_params["none"]
        alone = f"{penalty_alone(kind, data[1], base['d_model']) * 1e3:.2f} ms" if kind else "-"
        print(
            f"{name:<14} {n_params[name]:>10,} {extra:>6} {t:>11.3f} {min(times[name]):>7.3f} "
            f"{t / ref - 1:>+8.1%} {alone:>14}"
        )


if __name__ == "__main__":
    main()
