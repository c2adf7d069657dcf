"""dualasr's side of ``bench/compare_espnet.py``: builds the DO model of the batch
file's spec and times training steps on its batches (protocol in
``bench/_step_server.py``). Runs in dualasr's venv:

    .venv/bin/python bench/_dualasr_worker.py BATCHES.npz --threads 1 [--subsampling-channels 144]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from _step_server import count, protocol_stream, read_batches, serve

from dualasr.config import TrainConfig
from dualasr.model.asr import build_model
from dualasr.model.config import ModelConfig
from dualasr.train.trainer import make_optimizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("batches", type=Path)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--subsampling-channels", type=int, help="override the spec's model.subsampling_channels")
    args = ap.parse_args()
    proto = protocol_stream()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    spec, mean, std, batches = read_batches(args.batches)
    fields = dict(spec["model"])
    if args.subsampling_channels:
        fields["subsampling_channels"] = args.subsampling_channels
    cfg = ModelConfig.model_validate(fields)
    model = build_model(cfg, spec["vocab"]).train()
    model.set_cmvn(mean, std)

    def loss_fn(b: dict[str, torch.Tensor]) -> torch.Tensor:
        targets = {o: (b[o], b[f"{o}_lens"]) for o in cfg.outputs}
        return model(b["feats"], b["feat_lens"], targets)[0]

    sub = model.frontend.subsampling
    params = {
        "subsampling": count(sub),
        "encoder blocks": count(model.encoder) + count(model.frontend) - count(sub),
        **{f"{o} decoder": count(model.decoders[o]) for o in cfg.outputs},
        **{f"{o} CTC": count(model.ctcs[o]) if o in model.ctcs else 0 for o in cfg.outputs},
        "total": count(model),
        "subsampling channels": sub.conv[0].out_channels,
    }
    # The trainer's optimizer: Adam (AdamW without decay) with its fused kernel.
    def optimizer(ps, lr):
        return make_optimizer(ps, TrainConfig(lr=lr, weight_decay=0.0))

    serve(loss_fn, model.parameters(), batches, spec, params, proto, optimizer=optimizer)


if __name__ == "__main__":
    main()
