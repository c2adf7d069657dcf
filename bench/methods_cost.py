"""Cost of the architectural methods against negative transfer: parameters and
seconds per training step (forward + backward + AdamW) of the plain DO model
and each variant, on one fixed random batch, side by side in one run.

    .venv/bin/python bench/methods_cost.py
    .venv/bin/python bench/methods_cost.py --preset paper --batch 8 --frames 1000 --steps 5

Variants are the model overrides a study would put under
``study.models.<name>.model`` (see ``docs/methods.md``). Steps alternate between
the models, so load from other processes hits them alike.
"""

from __future__ import annotations

import argparse
import time

import torch

from dualasr.model import build_model, preset

#: name -> overrides of the preset's model section.
VARIANTS: dict[str, dict] = {
    "do": {},
    "do_split2": {"encoder": {"task_specific_layers": 2}},
    "do_hier3": {"hierarchy": {"surface_layer": 3}},
    "do_hier3_sc": {"hierarchy": {"surface_layer": 3, "self_condition": True}},
    "do_adapt2": {"adapters": {"layers": 2, "dim": 32}},
}


def batch(n: int, frames: int, vocab: int, seed: int = 0):
    """Random fbank-like features ``(n, frames, 80)`` and targets of 1/8 the frames."""
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, frames, 80, generator=g)
    lens = torch.full((n,), frames)
    n_tok = max(1, frames // 8)
    targets = {o: (torch.randint(1, vocab - 1, (n, n_tok), generator=g), torch.full((n,), n_tok)) for o in ("surface", "meaning")}
    return feats, lens, targets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--vocab", type=int, default=100, help="ids per output (English characters: ~100)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--frames", type=int, default=400, help="feature frames per utterance (10 ms each)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per model, after one warm-up step")
    args = ap.parse_args()

    feats, lens, targets = batch(args.batch, args.frames, args.vocab)
    models, opts, times = {}, {}, {}
    for name, overrides in VARIANTS.items():
        torch.manual_seed(0)
        models[name] = build_model(preset(args.preset, "do", **overrides), {"surface": args.vocab, "meaning": args.vocab}).train()
        opts[name] = torch.optim.AdamW(models[name].parameters(), lr=1e-4)
        times[name] = []
    for step in range(args.steps + 1):
        for name, model in models.items():
            start = time.perf_counter()
            loss, _ = model(feats, lens, targets)
            loss.backward()
            opts[name].step()
            opts[name].zero_grad(set_to_none=True)
            if step:  # the first step pays for allocations
                times[name].append(time.perf_counter() - start)

    base_p = sum(p.numel() for p in models["do"].parameters())
    base_t = min(times["do"])
    print(f"preset {args.preset}, vocab {args.vocab}, batch {args.batch} x {args.frames} frames, "
          f"{torch.get_num_threads()} threads, best of {args.steps} steps")  # fmt: skip
    print(f"{'variant':<14}{'parameters':>12}{'extra':>12}{'s/step':>9}{'x DO':>7}")
    for name, model in models.items():
        n = sum(p.numel() for p in model.parameters())
        t = min(times[name])
        print(f"{name:<14}{n:>12,}{n - base_p:>+12,}{t:>9.3f}{t / base_t:>7.2f}")


if __name__ == "__main__":
    main()
