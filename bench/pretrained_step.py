"""Cost of one training step of the pretrained recipes (conf/whisper.yaml,
conf/wav2vec2.yaml), measured on CPU with random weights, and the GPU epoch
time it implies.

Each architecture is built at its real size from a ``transformers`` config
saved without weights (config, feature extractor and, for Whisper, a
byte-level tokenizer: Whisper's 51,865-token output layer is kept), through
``build_model(..., pretrained_weights=False)``, the path a checkpoint is
loaded through. One step (forward, backward, AdamW update) on ``--batch``
utterances of ``--seconds`` s is counted with ``torch.utils.flop_counter.
FlopCounterMode`` (matmuls and convolutions), then a second one is timed.

GPU epoch estimate = FLOPs per utterance x utterances per epoch / sustained
GPU throughput (``--gpu-tflops``; default 25: a 24 GB Ampere/Ada card such as
an RTX 3090 / A5000 / L4-class peaks at 70-120 dense bf16 TFLOP/s, and
training reaches roughly a quarter to a third of that). Whisper pads every
utterance to its 30 s window, so its cost per utterance does not depend on
the utterance's length; wav2vec2's does.

    .venv/bin/python bench/pretrained_step.py                 # all three, 1 thread
    .venv/bin/python bench/pretrained_step.py --only whisper-base --batch 4
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import transformers as tf
from tokenizers import pre_tokenizers
from torch.utils.flop_counter import FlopCounterMode

from dualasr.model import build_model, preset
from dualasr.text.tokenizer import Tokenizer

WHISPER = {
    "whisper-base": {"d_model": 512, "encoder_layers": 6, "decoder_layers": 6, "encoder_attention_heads": 8,
                     "decoder_attention_heads": 8, "encoder_ffn_dim": 2048, "decoder_ffn_dim": 2048},
    "whisper-small": {"d_model": 768, "encoder_layers": 12, "decoder_layers": 12, "encoder_attention_heads": 12,
                      "decoder_attention_heads": 12, "encoder_ffn_dim": 3072, "decoder_ffn_dim": 3072},
}  # fmt: skip
SPECIALS = ["<|startoftranscript|>", "<|translate|>", "<|transcribe|>", "<|notimestamps|>"]
TEXT = "the quick brown fox jumps over the lazy dog and runs away fast"  # 62 characters


def save_architecture(name: str, d: Path) -> None:
    """Config (and feature extractor, tokenizer) of ``name`` without weights."""
    if name == "wav2vec2-base":
        tf.Wav2Vec2Config().save_pretrained(d)  # the defaults are wav2vec2-base's
        tf.Wav2Vec2FeatureExtractor(return_attention_mask=False).save_pretrained(d)
        return
    tok = tf.WhisperTokenizer(vocab={c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}, merges=[])
    tok.add_special_tokens({"additional_special_tokens": SPECIALS})
    ids = tok.convert_tokens_to_ids
    tf.WhisperConfig(vocab_size=51865, num_mel_bins=80, max_source_positions=1500, max_target_positions=448,
                     pad_token_id=ids("<|endoftext|>"), eos_token_id=ids("<|endoftext|>"),
                     decoder_start_token_id=ids("<|startoftranscript|>"), **WHISPER[name]).save_pretrained(d)  # fmt: skip
    tf.WhisperFeatureExtractor(feature_size=80).save_pretrained(d)
    tok.save_pretrained(d)


def build(name: str, d: Path, tok: Tokenizer):
    if name.startswith("whisper"):
        cfg = preset("paper", mode="sso", pretrained={"path": str(d), "whole": True})
        return build_model(cfg, {"surface": len(tok)}, tokenizers={"surface": tok}, pretrained_weights=False)
    cfg = preset("paper", mode="do", pretrained={"path": str(d)})
    return build_model(cfg, {"surface": len(tok), "meaning": len(tok)}, pretrained_weights=False)


def measure(name: str, batch: int, seconds: float) -> dict:
    tok = Tokenizer.build([TEXT], "char")
    with tempfile.TemporaryDirectory() as tmp:
        save_architecture(name, Path(tmp))
        model = build(name, Path(tmp), tok).train()
    params = sum(p.numel() for p in model.parameters())
    samples = int(seconds * 16000)
    wav, lens = torch.randn(batch, samples) * 0.1, torch.full((batch,), samples)
    ys = torch.tensor([tok.encode(TEXT)] * batch)
    targets = {o: (ys, torch.full((batch,), ys.size(1))) for o in ("surface", "meaning")}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step() -> None:
        loss, _ = model(wav, lens, targets)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    with FlopCounterMode(display=False) as counter:
        step()
    t0 = time.perf_counter()
    step()
    elapsed = time.perf_counter() - t0
    flops = counter.get_total_flops()
    return {"model": name, "parameters_M": round(params / 1e6, 1), "batch": batch, "seconds": seconds,
            "step_s_cpu": round(elapsed, 2), "tflop_per_step": round(flops / 1e12, 3),
            "gflop_per_utt": round(flops / batch / 1e9, 1),
            "cpu_gflops": round(flops / elapsed / 1e9, 1), "threads": torch.get_num_threads()}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=["whisper-base", "whisper-small", "wav2vec2-base"], action="append")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=4.0, help="utterance length (Whisper pads to 30 s anyway)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--utterances", type=int, default=57616, help="per epoch; the reference study's English train")
    ap.add_argument("--gpu-tflops", type=float, default=25.0, help="assumed sustained GPU training throughput")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for name in args.only or ["whisper-base", "wav2vec2-base", "whisper-small"]:
        row = measure(name, args.batch, args.seconds)
        epoch_tflop = row["gflop_per_utt"] * args.utterances / 1e3
        row["gpu_epoch_min"] = round(epoch_tflop / args.gpu_tflops / 60, 1)
        row["cpu_epoch_h"] = round(row["step_s_cpu"] / args.batch * args.utterances / 3600, 1)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
