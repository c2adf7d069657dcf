"""``dualasr train-lm``: a token LSTM language model on one output's training text.

The LM learns the same ids as the ASR models' tokenizer for that output
(built from the same training split by :func:`~dualasr.train.data.build_tokenizers`,
so SSO, MSO and DO models of a corpus share it; decoding checks the two token
lists are equal). Sentences are batched by length (little padding) in an order
drawn from ``(seed, epoch)``; Adam, gradient clipping; after each epoch the dev
perplexity is measured and the best epoch's weights are kept.

Output directory::

    tokens_<output>.json   the tokenizer
    lm.pt                  {"model", "lm_config", "output", "tokenizer", "history", "checksum"}
    metrics.csv            epoch, train and dev perplexity, seconds
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from pathlib import Path

import torch

from dualasr.atomic import atomic_write_text, remove_stale_temporaries
from dualasr.config import TextConfig
from dualasr.data.manifest import load_manifest, target_text
from dualasr.model.asr import pad_ids
from dualasr.model.checkpoint import save_atomic
from dualasr.model.lm import LMConfig, TokenLM
from dualasr.rundir import manifest_stamp, reuse_or_refuse
from dualasr.text.tokenizer import Tokenizer
from dualasr.train.data import build_tokenizers
from dualasr.train.trainer import seed_everything

log = logging.getLogger(__name__)

#: The language model file of an LM run directory.
LM_FILE = "lm.pt"


def _encoded(cuts, output: str, tok: Tokenizer) -> list[list[int]]:
    return [tok.encode(target_text(c, output, tok.unit)) for c in cuts]


def _batches(seqs: list[list[int]], size: int, rng: random.Random | None) -> list[list[list[int]]]:
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    chunks = [[seqs[i] for i in order[k : k + size]] for k in range(0, len(order), size)]
    if rng is not None:
        rng.shuffle(chunks)
    return chunks


@torch.no_grad()
def perplexity(lm: TokenLM, seqs: list[list[int]], batch_size: int = 256) -> float:
    """Token-level perplexity (eos included) of ``seqs`` under ``lm``."""
    lm.eval()
    nll, tokens = 0.0, 0
    for chunk in _batches(seqs, batch_size, None):
        ys, lens = pad_ids(chunk)
        loss, stats = lm(ys, lens)
        nll += float(loss) * stats["tokens"]
        tokens += stats["tokens"]
    lm.train()
    return math.exp(nll / max(tokens, 1))


def train_lm(
    train_manifest: Path,
    dev_manifest: Path,
    output: str,
    out_dir: Path,
    cfg: LMConfig | None = None,
    text: TextConfig | None = None,
    seed: int = 0,
) -> Path:
    """Train the LM of ``output``; returns its path. An ``lm.pt`` of the same
    manifests, output, configs and seed is returned as is; one of other inputs
    is refused (:class:`~dualasr.rundir.StaleOutputError`)."""
    out_dir = Path(out_dir)
    final = out_dir / LM_FILE
    cfg, text = cfg or LMConfig(), text or TextConfig()
    inputs = {
        "train_manifest": manifest_stamp(train_manifest), "dev_manifest": manifest_stamp(dev_manifest),
        "output": output, "lm": cfg.model_dump(), "text": text.model_dump(), "seed": seed,
    }  # fmt: skip
    if reuse_or_refuse(final, inputs, stale=out_dir.glob("tokens_*.json")):
        return final
    seed_everything(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    for p in remove_stale_temporaries(out_dir, LM_FILE):  # left by a process killed while saving
        log.info("removed %s, the temporary file of an interrupted write", p)
    train_cuts = load_manifest(train_manifest, check_audio=False)
    tok = build_tokenizers(train_cuts, (output,), text, out_dir)[output]
    train_seqs = _encoded(train_cuts, output, tok)
    dev_seqs = _encoded(load_manifest(dev_manifest, check_audio=False), output, tok)
    lm = TokenLM(len(tok), cfg)
    opt = torch.optim.Adam(lm.parameters(), lr=cfg.lr)
    rows, history, best, best_state = ["epoch,train_ppl,dev_ppl,seconds"], [], math.inf, None
    for epoch in range(1, cfg.epochs + 1):
        t0, nll, tokens = time.time(), 0.0, 0
        for chunk in _batches(train_seqs, cfg.batch_size, random.Random(seed * 1000 + epoch)):
            ys, lens = pad_ids(chunk)
            loss, stats = lm(ys, lens)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
            opt.step()
            nll += stats["loss"] * stats["tokens"]
            tokens += stats["tokens"]
        dev_ppl = perplexity(lm, dev_seqs)
        history.append({"epoch": epoch, "train_ppl": math.exp(nll / tokens), "dev_ppl": dev_ppl})
        rows.append(f"{epoch},{math.exp(nll / tokens):.4f},{dev_ppl:.4f},{time.time() - t0:.1f}")
        log.info("%s LM epoch %d: train ppl %.3f, dev ppl %.3f", output, epoch, history[-1]["train_ppl"], dev_ppl)
        if dev_ppl < best:
            best, best_state = dev_ppl, copy.deepcopy(lm.state_dict())
    atomic_write_text(out_dir / "metrics.csv", "\n".join(rows) + "\n", overwrite=True)
    save_atomic({"model": best_state, "lm_config": cfg.model_dump(), "output": output,
                 "tokenizer": tok.to_dict(), "history": history}, final)  # fmt: skip
    return final
