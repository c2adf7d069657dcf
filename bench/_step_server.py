"""The timing loop both sides of ``bench/compare_espnet.py`` run, each in its
own process and virtualenv (dualasr's, ESPnet's): only NumPy and torch here.

Batch file (``.npz``, read with ``allow_pickle=False``)::

    spec                  0-d str: JSON {"model": dualasr ModelConfig dump,
                          "vocab": {"surface": V_s, "meaning": V_m}, "lr": float,
                          "grad_clip": float, "frame_shift": float (s)}
    cmvn_mean, cmvn_std   (n_mels,) float32, global CMVN of the training set
    n_batches             0-d int
    b<i>_feats            (batch, frames, n_mels) float32 raw log-mel fbank, zero-padded
    b<i>_feat_lens        (batch,) int64
    b<i>_<output>         (batch, L) int64 token ids padded with -1, output surface / meaning
    b<i>_<output>_lens    (batch,) int64

Protocol (one JSON object per line): the worker prints ``{"ready": true,
"params": {...}, "torch": version}`` once built, then answers each request
``{"steps": N}`` read from stdin with ``{"seconds": wall, "cpu": CPU seconds
of the process (all its threads), "audio": seconds of audio trained, "loss":
last loss}`` after N steps (cycling through the batches
where the last request stopped); ``{"quit": true}`` or end of input stops it.
Everything else the worker or its libraries print goes to stderr.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

OUTPUTS = ("surface", "meaning")


def write_batches(path: Path, spec: dict, cmvn_mean, cmvn_std, batches: list[dict]) -> None:
    """Write ``batches`` (each ``feats``, ``feat_lens`` and ``<output>``,
    ``<output>_lens`` as arrays or tensors) in the format above."""
    arrays = {
        "spec": np.array(json.dumps(spec)),
        "cmvn_mean": np.asarray(cmvn_mean, dtype=np.float32),
        "cmvn_std": np.asarray(cmvn_std, dtype=np.float32),
        "n_batches": np.array(len(batches)),
    }
    for i, batch in enumerate(batches):
        for key, value in batch.items():
            arr = np.asarray(value)
            arrays[f"b{i}_{key}"] = arr.astype(np.float32 if key == "feats" else np.int64)
    np.savez(path, **arrays)


def read_batches(path: Path) -> tuple[dict, torch.Tensor, torch.Tensor, list[dict[str, torch.Tensor]]]:
    """``(spec, cmvn_mean, cmvn_std, batches)``, the batches as dicts of tensors."""
    with np.load(path, allow_pickle=False) as f:
        spec = json.loads(str(f["spec"]))
        mean, std = torch.from_numpy(f["cmvn_mean"]), torch.from_numpy(f["cmvn_std"])
        keys = ["feats", "feat_lens"] + [k for o in OUTPUTS for k in (o, f"{o}_lens")]
        batches = [{k: torch.from_numpy(f[f"b{i}_{k}"]) for k in keys} for i in range(int(f["n_batches"]))]
    return spec, mean, std, batches


def protocol_stream():
    """The real stdout for the protocol; ``sys.stdout`` (and fd 1) go to stderr,
    so a library's prints cannot corrupt a reply."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto


def serve(
    loss_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    parameters: Iterable[torch.nn.Parameter],
    batches: list[dict[str, torch.Tensor]],
    spec: dict,
    params: dict[str, int],
    proto,
    extra: dict | None = None,
    optimizer: Callable[[list[torch.nn.Parameter], float], torch.optim.Optimizer] | None = None,
) -> None:
    """Answer step requests on stdin. One step: ``loss_fn(batch)``, backward,
    gradient-norm clipping, optimizer step, gradients cleared. ``optimizer``
    builds the toolkit's own Adam (default: ``torch.optim.Adam``, as ESPnet's
    ``optim: adam``). ``params`` (counts per part) and ``extra`` go into the
    ready message."""
    parameters = list(parameters)
    opt = (optimizer or (lambda ps, lr: torch.optim.Adam(ps, lr=lr)))(parameters, spec["lr"])
    clip, shift = spec["grad_clip"], spec["frame_shift"]
    audio_s = [float(b["feat_lens"].sum()) * shift for b in batches]

    def reply(obj: dict) -> None:
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    reply({"ready": True, "params": params, "torch": torch.__version__, "threads": torch.get_num_threads(),
           **(extra or {})})  # fmt: skip
    i = 0
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("quit"):
            break
        audio, loss = 0.0, None
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(request["steps"]):
            k = i % len(batches)
            loss = loss_fn(batches[k])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            audio += audio_s[k]
            i += 1
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        reply({"seconds": seconds, "cpu": cpu, "audio": audio, "loss": None if loss is None else float(loss)})


def count(module: torch.nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())
