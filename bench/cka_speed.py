"""Speed and memory of streaming linear CKA over a test set of frames.

Two synthetic 12-layer models (256 dims) produce padded batches of 20 utterances
(2,000 valid frames per batch) that are fed to `LinearCKAAccumulator.update` with
their padding mask, as the analysis stage does; `compute` then gives all 12 x 12
layer pairs, biased and debiased. Each frame count runs in a fresh process so that
its peak resident memory (VmHWM, else getrusage ru_maxrss) is its own: memory should not grow
with the number of frames.

    .venv/bin/python bench/cka_speed.py                      # 200,000 and 50,000 frames
    .venv/bin/python bench/cka_speed.py --frames 200000 --matmul-dtype float64
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

from dualasr.analysis.cka import LinearCKAAccumulator

UTTERANCES_PER_BATCH = 20
LENGTHS = torch.tensor([90, 110] * (UTTERANCES_PER_BATCH // 2))  # 2,000 valid frames per batch


def max_rss_mb() -> float:
    """Peak resident memory of this process so far, MB."""
    try:  # VmHWM is this process's own; ru_maxrss also counts the parent's at fork
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def synthetic_batch(gen: torch.Generator, n_layers: int, dim: int, angles: torch.Tensor):
    """Layers of two models on the same padded frames: layer k of model m is
    cos(a) z + sin(a) e_m[..., k : k + dim], a shared signal z plus noise that
    shifts by one feature per layer, so layers drift apart with depth."""
    frames = int(LENGTHS.max())
    z = torch.randn((UTTERANCES_PER_BATCH, frames, dim), generator=gen)
    models = []
    for m in range(2):
        e = torch.randn((UTTERANCES_PER_BATCH, frames, dim + n_layers), generator=gen)
        models.append(
            [
                torch.add(
                    e[..., k : k + dim] * torch.sin(angles[m, k]),
                    z,
                    alpha=float(torch.cos(angles[m, k])),
                )
                for k in range(n_layers)
            ]
        )
    mask = torch.arange(frames)[None, :] < LENGTHS[:, None]
    return models[0], models[1], mask


def sgemm_gflops(n: int = 2000, d: int = 3072) -> float:
    """Speed of the accumulator's dominant product on this machine right now."""
    x = torch.randn(n, d)
    x.T @ x
    t = time.perf_counter()
    for _ in range(3):
        x.T @ x
    return 3 * 2 * n * d * d / (time.perf_counter() - t) / 1e9


def run(frames: int, n_layers: int, dim: int, matmul_dtype: str) -> dict:
    rss_start = max_rss_mb()
    gen = torch.Generator().manual_seed(0)
    angles = torch.linspace(0.1, 1.4, n_layers).repeat(2, 1)
    angles[1] += 0.1
    acc = LinearCKAAccumulator(n_layers, n_layers, matmul_dtype=getattr(torch, matmul_dtype))
    n_batches = frames // int(LENGTHS.sum())
    t_update = 0.0
    t0 = time.perf_counter()
    for _ in range(n_batches):
        xs, ys, mask = synthetic_batch(gen, n_layers, dim, angles)
        t = time.perf_counter()
        acc.update(xs, ys, mask=mask)
        t_update += time.perf_counter() - t
    t = time.perf_counter()
    biased = acc.compute(debiased=False)
    debiased = acc.compute()
    t_compute = time.perf_counter() - t
    state_mb = (
        sum(v.numel() * v.element_size() for v in acc._state.values())
        + sum(v.numel() * v.element_size() for v in acc._self_x + acc._self_y)
    ) / 2**20
    return {
        "frames": acc.n_examples,
        "matmul_dtype": matmul_dtype,
        "threads": torch.get_num_threads(),
        "wall_s": time.perf_counter() - t0,
        "update_s": t_update,
        "compute_s": t_compute,
        "rss_start_mb": rss_start,
        "peak_rss_mb": max_rss_mb(),
        "state_mb": state_mb,
        "cka_diag": [round(float(v), 3) for v in biased.diagonal()[:: max(1, n_layers // 4)]],
        "max_abs_biased_minus_debiased": float(abs(biased - debiased).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, nargs="*", default=[200_000, 50_000])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--matmul-dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(args.frames[0], args.layers, args.dim, args.matmul_dtype)))
        return
    print(
        f"linear CKA, {args.layers} x {args.layers} layer pairs, {args.dim} dims, "
        f"batches of {int(LENGTHS.sum())} valid frames, matmul {args.matmul_dtype}, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; "
        f"float32 X^T Y (2000 x 3072): {sgemm_gflops():.0f} GFLOP/s now "
        f"(the update's floor is 2 n 3072^2 flops)"
    )
    print(
        f"{'frames':>8} {'wall s':>7} {'update s':>9} {'compute s':>10} "
        f"{'RSS start MB':>13} {'peak RSS MB':>12} {'state MB':>9}  diag CKA"
    )
    for frames in args.frames:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--frames",
                str(frames),
                "--layers",
                str(args.layers),
                "--dim",
                str(args.dim),
                "--matmul-dtype",
                args.matmul_dtype,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{r['frames']:>8} {r['wall_s']:>7.1f} {r['update_s']:>9.1f} {r['compute_s']:>10.2f} "
            f"{r['rss_start_mb']:>13.0f} {r['peak_rss_mb']:>12.0f} {r['state_mb']:>9.0f}  {r['cka_diag']}"
            f"  (|biased - debiased| <= {r['max_abs_biased_minus_debiased']:.1e})"
        )


if __name__ == "__main__":
    main()
