"""``dualasr decode``: a trained model over a manifest, both outputs at once.

Writes, in the output directory:

- ``hyps_<split>.jsonl``: one object per utterance,
  ``{"id", "surface": text | null, "meaning": text | null, "scores": {output:
  {"score", "att", "ctc"}}}`` (an SO model fills only its own output);
- ``hyp_<output>_<split>.trn`` and ``ref_<output>_<split>.trn``: sclite's
  ``text (utterance-id)`` format, one line per utterance, so
  ``sclite -r ref.trn trn -h hyp.trn trn`` scores them.

Utterances are decoded longest first, in batches of at most
``decode.batch_size`` utterances and ``decode.max_duration`` seconds of padded
audio, with one encoder pass per batch for every output. Utterances longer than
``data.max_utterance_seconds`` are an error naming them, or with
``data.skip_invalid`` left out and listed in ``decode_<split>.skipped.tsv``.
A model refuses a manifest of another language than its training data's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from lhotse import CutSet
from lhotse.dataset import SimpleCutSampler
from tqdm import tqdm

from dualasr.atomic import atomic_write_text
from dualasr.config import DataConfig, DecodeConfig
from dualasr.data.checks import UnusableCutError, record_skipped, within_max_duration
from dualasr.data.features import collate_inputs
from dualasr.data.manifest import ManifestError, Skipped, load_manifest, supervision, target_text
from dualasr.decode.search import decode_dual
from dualasr.device import pick_device
from dualasr.layout import hyps_name
from dualasr.model.checkpoint import load_model
from dualasr.model.lm import load_lm
from dualasr.rundir import file_sha256, manifest_stamp, reuse_or_recompute
from dualasr.text.tokenizer import Tokenizer

#: Share of a manifest's reference tokens outside a model's vocabulary above
#: which the manifest is taken for another language (checkpoints without one).
MAX_UNKNOWN_SHARE = 0.5


class LanguageMismatchError(ManifestError):
    """A model asked to decode data of another language than it was trained on."""


def hyps_file(out_dir: str | Path, split: str) -> Path:
    """Where ``dualasr decode`` writes a split's hypotheses in a run directory."""
    return Path(out_dir) / hyps_name(split)


def decode(
    model_path: str | Path,
    manifest: str | Path,
    out_dir: str | Path,
    cfg: DecodeConfig | None = None,
    split: str = "test",
    device: torch.device | None = None,
    progress: bool = True,
    lms: dict[str, Path] | None = None,
    data: DataConfig | None = None,
) -> Path:
    """Decode every cut of ``manifest`` (with cached features); returns the
    hypotheses file. Skipped when it exists and was made from this model, manifest,
    decoding config and LMs; made again otherwise. ``lms``: per output, a language
    model (``dualasr train-lm``) fused with weight ``cfg.lm_weight[output]``;
    outputs the model lacks are ignored. ``data``: the utterance length limit
    and whether unusable cuts are skipped (see the module docstring)."""
    out_dir = Path(out_dir)
    cfg = cfg or DecodeConfig()
    hyps_path = hyps_file(out_dir, split)
    inputs = {
        "model": file_sha256(model_path), "manifest": manifest_stamp(manifest), "decode": cfg.model_dump(),
        "usable_cuts": (data or DataConfig()).usable_cut_rule(),
        "lms": {o: file_sha256(p) for o, p in sorted((lms or {}).items()) if cfg.lm_weight.get(o, 0.0) > 0},
    }  # fmt: skip
    if reuse_or_recompute(hyps_path, inputs):
        return hyps_path
    device = device or pick_device()
    model, tokenizers = load_model(model_path, device)
    fused = {o: load_lm(p, tokenizers[o], device) for o, p in (lms or {}).items()
             if o in model.outputs and cfg.lm_weight.get(o, 0.0) > 0}  # fmt: skip
    data = data or DataConfig()
    skipped: list[Skipped] = []
    cuts = load_manifest(manifest, check_audio=False)
    cuts = within_max_duration(cuts, data.max_utterance_seconds, str(manifest), data.skip_invalid, skipped)
    if not len(cuts):
        raise UnusableCutError(f"{manifest}: no usable cut left, all {len(skipped)} skipped")
    check_language(model_path, model.language, tokenizers, cuts, manifest)
    rows, refs = [], {o: [] for o in model.outputs}
    audio_s, t0 = 0.0, time.perf_counter()
    bar = tqdm(total=len(cuts), desc=f"decode {out_dir.name}", unit="utt", disable=not progress)
    with torch.inference_mode():
        for batch in decode_batches(cuts, cfg):
            feats, lens = collate_inputs(batch, model.input_kind)
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
    record_skipped(skipped, out_dir / f"decode_{split}.skipped.tsv", f"decoding {manifest}")
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



def decode_batches(cuts: CutSet, cfg: DecodeConfig) -> SimpleCutSampler:
    """Batches of ``cuts``, longest first, each of at most ``cfg.batch_size`` cuts
    and ``cfg.max_duration`` seconds once padded (cuts x the longest; a single cut
    longer than that is a batch of its own). One process decodes every cut,
    even inside a distributed run, so the sampler is not sharded over ranks."""
    return SimpleCutSampler(
        cuts.sort_by_duration(ascending=False), max_duration=cfg.max_duration, max_cuts=cfg.batch_size,
        shuffle=False, world_size=1, rank=0,
    )  # fmt: skip


def check_language(
    model_path: str | Path, language: str | None, tokenizers: dict[str, Tokenizer], cuts: CutSet, manifest: str | Path
) -> None:  # fmt: skip
    """Refuse cuts of another language than the model's training data
    (``LanguageMismatchError`` naming the model file, its language and the
    manifest's). A checkpoint that does not record its language is judged by
    its vocabularies instead: when most reference tokens of some output are
    unknown to the model (an English model reading Hangul), the data is of
    another language or script."""
    found = sorted({supervision(c).language for c in cuts})
    if language is not None:
        if found != [language]:
            raise LanguageMismatchError(
                f"{model_path}: a model trained on language {language!r} cannot decode "
                f"{manifest} (language {', '.join(map(repr, found))})"
            )
        return
    for output, tok in tokenizers.items():
        ids = [i for c in cuts for i in tok.encode(target_text(c, output, tok.unit))]
        unknown = sum(i == tok.unk for i in ids) / max(len(ids), 1)
        if unknown > MAX_UNKNOWN_SHARE:
            raise LanguageMismatchError(
                f"{model_path}: {unknown:.0%} of the {output} reference tokens of {manifest} "
                f"(language {', '.join(map(repr, found))}) are outside the model's vocabulary; "
                "it was trained on another language"
            )
