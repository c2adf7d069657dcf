"""``dualasr decode``: a trained model over a manifest, both outputs at once.

Writes, in the output directory:

- ``hyps_<split>.jsonl``: one object per utterance,
  ``{"id", "surface": text | null, "meaning": text | null, "scores": {output:
  {"score", "att", "ctc"}}}`` (an SO model fills only its own output);
- ``hyp_<output>_<split>.trn`` and ``ref_<output>_<split>.trn``: sclite's
  ``text (utterance-id)`` format, one line per utterance, so
  ``sclite -r ref.trn trn -h hyp.trn trn`` scores them.

Utterances are decoded in batches of similar duration (less padding) with one
encoder pass per batch for every output.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from lhotse import CutSet
from lhotse.dataset.collation import collate_features
from tqdm import tqdm

from dualasr.atomic import atomic_write_text
from dualasr.config import DecodeConfig
from dualasr.data.manifest import load_manifest
from dualasr.decode.search import decode_dual
from dualasr.rundir import file_sha256, manifest_stamp, reuse_or_recompute
from dualasr.train.data import target_text
from dualasr.train.lm import load_lm
from dualasr.train.trainer import load_model, pick_device


def hyps_file(out_dir: str | Path, split: str) -> Path:
    """Where ``dualasr decode`` writes a split's hypotheses in a run directory."""
    return Path(out_dir) / f"hyps_{split}.jsonl"


def decode(
    model_path: str | Path,
    manifest: str | Path,
    out_dir: str | Path,
    cfg: DecodeConfig | None = None,
    split: str = "test",
    device: torch.device | None = None,
    progress: bool = True,
    lms: dict[str, Path] | None = None,
) -> Path:
    """Decode every cut of ``manifest`` (with cached features); returns the
    hypotheses file. Skipped when it exists and was made from this model, manifest,
    decoding config and LMs; made again otherwise. ``lms``: per output, a language
    model (``dualasr train-lm``) fused with weight ``cfg.lm_weight[output]``;
    outputs the model lacks are ignored."""
    out_dir = Path(out_dir)
    cfg = cfg or DecodeConfig()
    hyps_path = hyps_file(out_dir, split)
    inputs = {
        "model": file_sha256(model_path), "manifest": manifest_stamp(manifest), "decode": cfg.model_dump(),
        "lms": {o: file_sha256(p) for o, p in sorted((lms or {}).items()) if cfg.lm_weight.get(o, 0.0) > 0},
    }  # fmt: skip
    if reuse_or_recompute(hyps_path, inputs):
        return hyps_path
    device = device or pick_device()
    model, tokenizers = load_model(model_path, device)
    fused = {o: load_lm(p, tokenizers[o], device) for o, p in (lms or {}).items()
             if o in model.outputs and cfg.lm_weight.get(o, 0.0) > 0}  # fmt: skip
    cuts = load_manifest(manifest, check_audio=False).sort_by_duration(ascending=False)
    rows, refs = [], {o: [] for o in model.outputs}
    cut_list = list(cuts)
    audio_s, t0 = 0.0, time.perf_counter()
    bar = tqdm(total=len(cut_list), desc=f"decode {out_dir.name}", unit="utt", disable=not progress)
    with torch.inference_mode():
        for i in range(0, len(cut_list), cfg.batch_size):
            batch = cut_list[i : i + cfg.batch_size]
            feats, lens = collate_features(CutSet.from_cuts(batch))
            hyps = decode_dual(
                model, feats.to(device), lens.to(device), beam=cfg.beam, ctc_weight=cfg.ctc_weight,
                length_penalty=cfg.length_penalty, max_len_ratio=cfg.max_len_ratio,
                lms=fused, lm_weight=cfg.lm_weight,
            )  # fmt: skip
            for j, cut in enumerate(batch):
                row = {"id": cut.id, "surface": None, "meaning": None, "scores": {}}
                for o in model.outputs:
                    h = hyps[o][j]
                    row[o] = tokenizers[o].decode(h.tokens)
                    row["scores"][o] = {"score": h.score, "att": h.att_score, "ctc": h.ctc_score}
                    refs[o].append((cut.id, target_text(cut, o, tokenizers[o].unit)))
                rows.append(row)
                audio_s += cut.duration
            bar.update(len(batch))
    bar.close()
    elapsed = time.perf_counter() - t0
    out_dir.mkdir(parents=True, exist_ok=True)
    for o in model.outputs:
        hyp_lines = [f"{r[o]} ({r['id']})" for r in rows]
        ref_lines = [f"{text} ({uid})" for uid, text in refs[o]]
        atomic_write_text(out_dir / f"hyp_{o}_{split}.trn", "\n".join(hyp_lines) + "\n", overwrite=True)
        atomic_write_text(out_dir / f"ref_{o}_{split}.trn", "\n".join(ref_lines) + "\n", overwrite=True)
    info = {"utterances": len(rows), "audio_seconds": audio_s, "decode_seconds": elapsed,
            "rtf": elapsed / max(audio_s, 1e-9), "device": str(device), **cfg.model_dump(),
            "lms": {o: str(lms[o]) for o in fused}}  # fmt: skip
    atomic_write_text(out_dir / f"decode_{split}.json", json.dumps(info, indent=1), overwrite=True)
    # The hypotheses file is written last: its presence marks the stage done.
    atomic_write_text(hyps_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), overwrite=True)
    return hyps_path

