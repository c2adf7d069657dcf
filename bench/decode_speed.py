"""Decoding speed: real-time factor (decode wall time / audio duration) of CTC
greedy search and of joint CTC/attention beam search, for every output of a
model (both for DO), on CPU, side by side in one run.

Both searches share one encoder pass per batch (as ``dualasr decode`` does);
the table gives the encoder, each output's search, and each method's total
(encoder + all outputs). Greedy is CTC best path for an output with a CTC head,
greedy attention decoding (``beam_search`` with beam 1, CTC weight 0) for one
without (the DO meaning output by default). Beam search is
``dualasr.decode.beam_search`` with the config's ``decode`` section (CTC
weight, length penalty, ``max_len_ratio``) and ``--beam``.

    .venv/bin/python bench/decode_speed.py --model runs/smoke/exp/en/do/seed0/model.pt --data runs/smoke/data/en \
        --config conf/smoke.yaml --threads 1
    .venv/bin/python bench/decode_speed.py --config conf/demo.yaml --data runs/demo/data/en --utts 50

Without ``--model`` an untrained model of the ``--config`` size is built: its
speed per step is right, but its hypotheses run to the ``max_len_ratio`` cap
(it never learned to stop), so its beam-search RTF is an upper bound.
On a machine busy with other jobs, torch's default intra-op thread count can
be many times slower than ``--threads 1`` (2 cores, load ~6: 148 s against
3.4 s for the first example), so compare runs at the same ``--threads``.

"at cap" is the share of hypotheses ended by that cap instead of eos: near
100 % means the model has not learned to stop (untrained or barely trained),
and the attention searches' RTF is an upper bound. The corpus needs its
features (computed here if missing).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from lhotse import CutSet
from lhotse.dataset.collation import collate_features

from dualasr.config import load_config, model_config
from dualasr.data.features import compute_features
from dualasr.data.manifest import load_manifest
from dualasr.decode import beam_search, ctc_greedy
from dualasr.model.asr import build_model
from dualasr.model.checkpoint import load_model
from dualasr.model.lm import load_lm
from dualasr.train.data import build_tokenizers


def get_model(args, cfg, fbank: Path):
    """The trained model, or an untrained one of the config's size (with the corpus's
    tokenizers and CMVN)."""
    if args.model:
        model, _ = load_model(args.model, "cpu")
        return model, f"{args.model} (trained)"
    print(
        "WARNING: no --model: decoding an UNTRAINED model; its hypotheses run to the "
        f"max_len_ratio={cfg.decode.max_len_ratio} cap, so beam search is slower than with a trained model",
        file=sys.stderr,
    )
    mcfg = model_config(cfg, "do")
    cuts = load_manifest(fbank / "train.jsonl.gz", check_audio=False)
    with tempfile.TemporaryDirectory() as tmp:
        toks = build_tokenizers(cuts, mcfg.outputs, cfg.text, Path(tmp))
    torch.manual_seed(0)
    model = build_model(mcfg, {o: len(t) for o, t in toks.items()})
    cmvn = json.loads((fbank / "cmvn.json").read_text())
    model.set_cmvn(torch.tensor(cmvn["mean"]), torch.tensor(cmvn["std"]))
    return model.eval(), f"UNTRAINED, size of {args.config}"


def pick(cuts: list, n: int) -> list:
    """``n`` utterances spread evenly over the duration-sorted list (representative lengths)."""
    if n >= len(cuts):
        return cuts
    return [cuts[round(i * (len(cuts) - 1) / (n - 1))] for i in range(n)] if n > 1 else cuts[:1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="trained model.pt (EXP_DIR/model.pt)")
    ap.add_argument("--config", type=Path, default=Path("conf/demo.yaml"),
                    help="decode section; model size when --model is not given")  # fmt: skip
    ap.add_argument(
        "--data", type=Path, required=True, help="corpus dir with cuts_<split>.jsonl.gz"
    )
    ap.add_argument("--split", default="test")
    ap.add_argument("--utts", type=int, default=100)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--batch-size", type=int, help="default: the config's decode.batch_size")
    ap.add_argument("--threads", type=int, help="intra-op threads (default: torch's)")
    ap.add_argument("--lm", action="append", default=[], metavar="OUTPUT=PATH",
                    help="also time beam search fused with this LM (dualasr train-lm), weight decode.lm_weight[OUTPUT] or 0.3")  # fmt: skip
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    dec = cfg.decode
    batch_size = args.batch_size or dec.batch_size
    fbank = compute_features(args.data, splits=("train", args.split), progress=False)
    model, what = get_model(args, cfg, fbank)
    if args.lm and not args.model:
        ap.error("--lm needs --model (the LM must share a trained model's tokens)")
    tokenizers = load_model(args.model, "cpu")[1] if args.lm else {}
    lms = {}
    for pair in args.lm:
        output, _, path = pair.partition("=")
        lms[output] = load_lm(path, tokenizers[output])
    cuts = load_manifest(fbank / f"{args.split}.jsonl.gz", check_audio=False)
    cuts = pick(list(cuts.sort_by_duration(ascending=False)), args.utts)
    batches = [cuts[i : i + batch_size] for i in range(0, len(cuts), batch_size)]
    audio = sum(c.duration for c in cuts)

    def greedy(enc, o):
        if o in model.ctcs:
            return ctc_greedy(model.ctcs[o].log_probs(enc.out[o]), enc.lens)
        hyps = beam_search(model, enc, o, 1, 0.0, max_len_ratio=dec.max_len_ratio)
        return [h.tokens for h in hyps]

    def beam(enc, o):
        weight = dec.ctc_weight if o in model.ctcs else 0.0
        hyps = beam_search(model, enc, o, args.beam, weight, dec.length_penalty, dec.max_len_ratio)
        return [h.tokens for h in hyps]

    def fused(enc, o):
        if o not in lms:
            return None
        weight = dec.ctc_weight if o in model.ctcs else 0.0
        hyps = beam_search(model, enc, o, args.beam, weight, dec.length_penalty, dec.max_len_ratio,
                           lm=lms[o], lm_weight=dec.lm_weight.get(o, 0.3))  # fmt: skip
        return [h.tokens for h in hyps]

    methods = [("greedy", greedy), ("beam", beam)] + ([("beam+LM", fused)] if lms else [])
    secs: dict[str, float] = defaultdict(float)
    tokens: dict[str, int] = defaultdict(int)
    capped: dict[str, int] = defaultdict(int)  # hypotheses ended by the length cap, not by eos
    warm_up = batches[-1][-1:]  # untimed: the shortest utterance
    with torch.inference_mode():
        for k, batch in enumerate([warm_up, *batches]):
            feats, lens = collate_features(CutSet.from_cuts(batch))
            t = time.perf_counter()
            enc = model.encode(feats, lens)
            times = {"encoder": time.perf_counter() - t}
            # beam_search's max_len (eos included)
            cap = (enc.lens.float() * dec.max_len_ratio).long().clamp_min(1).tolist()
            for method, search in methods:
                for o in model.outputs:
                    key = f"{method} {o}"
                    t = time.perf_counter()
                    hyps = search(enc, o)
                    times[key] = time.perf_counter() - t
                    if hyps is None:  # no LM for this output
                        del times[key]
                        continue
                    if k:
                        tokens[key] += sum(len(h) for h in hyps)
                        capped[key] += sum(len(h) + 1 >= m for h, m in zip(hyps, cap, strict=True))
            if k:
                for key, v in times.items():
                    secs[key] += v

    n_params = sum(p.numel() for p in model.parameters())
    kind = {("surface", "meaning"): "DO", ("surface",): "SSO", ("meaning",): "MSO"}
    print(f"model {what}  {kind.get(tuple(model.outputs), '?')}  {n_params / 1e6:.2f} M parameters  "
          f"CPU threads {torch.get_num_threads()}")  # fmt: skip
    print(f"data {args.data} ({args.split})  utterances {len(cuts)}  audio {audio:.1f} s  "
          f"batch size {batch_size}  beam {args.beam}  ctc_weight {dec.ctc_weight}  "
          f"max_len_ratio {dec.max_len_ratio}")  # fmt: skip

    def row(label: str, wall: float, per_utt: str = "", at_cap: str = "") -> None:
        print(f"{label:46} {wall:8.2f} {wall / audio:8.4f} {per_utt:>10} {at_cap:>7}")

    print(f"{'':46} {'wall s':>8} {'RTF':>8} {'tokens/utt':>10} {'at cap':>7}")
    row("encoder (shared by both methods)", secs["encoder"])
    labels = {"greedy": "greedy", "beam": f"beam {args.beam}", "beam+LM": f"beam {args.beam} + LM"}
    for method, _ in methods:
        label = labels[method]
        for o in model.outputs:
            key = f"{method} {o}"
            if key not in secs:
                continue
            if o not in model.ctcs:
                how = "attention, no CTC head"
            else:
                how = "CTC best path" if method == "greedy" else f"CTC/attention {dec.ctc_weight}"
            if method == "beam+LM":
                how += f", LM {dec.lm_weight.get(o, 0.3)}"
            at_cap = "" if how == "CTC best path" else f"{100 * capped[key] / len(cuts):.0f}%"
            row(f"  {label} {o} ({how})", secs[key], f"{tokens[key] / len(cuts):.1f}", at_cap)
        if method == "beam+LM":
            continue  # outputs without an LM were not re-decoded
        total = secs["encoder"] + sum(secs[f"{method} {o}"] for o in model.outputs)
        row(f"{label} total (encoder + {len(model.outputs)} outputs)", total)


if __name__ == "__main__":
    main()
