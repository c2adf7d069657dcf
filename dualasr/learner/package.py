"""Packaged models: one file holding everything ``transcribe`` needs.

A package (``*.dualasr``) is a safetensors file: the model's weights (CMVN
statistics included: they are buffers of the model) under ``model.<key>``, each
fused language model's under ``lm.<output>.<key>``, and in the safetensors
metadata two strings:

- ``dualasr``: JSON ``{"format": "dualasr-package", "format_version": 1,
  "name", "label", "mode", "outputs", "language", "model_config",
  "tokenizers": {output: Tokenizer.to_dict()}, "lms": {output: {"lm_config"}},
  "decode": {beam, ctc_weight, ..., lm_weight} (the run's test decoding
  settings, the defaults of transcribe), "provenance": {...}}``;
- ``checksum``: ``sha256`` over :func:`~dualasr.model.checkpoint.state_checksum`
  of the tensors and the ``dualasr`` string, so a changed weight or a changed
  vocabulary is refused.

safetensors stores raw tensors and a JSON header, so reading a package runs no
code (no pickle anywhere). Provenance records what the model learnt from: the
corpus, hours and utterances of training audio, speakers, the synthesizer
engines when the corpus is ``dualasr synth``'s, and the test CER per output
from the run's decoded test set; ``note`` says in one sentence what the model
can be trusted on.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from dualasr.atomic import atomic_path
from dualasr.errors import DualasrError
from dualasr.layout import CORPORA_FILE, read_run_info
from dualasr.model.asr import DualASR, build_model
from dualasr.model.checkpoint import MODEL_FILE, load_checkpoint, state_checksum
from dualasr.model.config import LMConfig, ModelConfig
from dualasr.model.lm import TokenLM, read_lm_checkpoint
from dualasr.score.rates import corpus_rate, count_errors
from dualasr.text.normalize import normalize, normalize_phones
from dualasr.text.tokenizer import Tokenizer

FORMAT = "dualasr-package"
FORMAT_VERSION = 1
SUFFIX = ".dualasr"
#: Largest safetensors header read before deciding a file is foreign (its
#: first 8 bytes, read as a header length, then make no sense).
_MAX_HEADER = 1 << 28


class PackageError(DualasrError):
    """A package that cannot be made or used; names the file."""


@dataclass
class Package:
    """A loaded package: the model in eval mode on its device, one tokenizer
    and (optionally) one fused LM per output, and what it is."""

    path: Path
    model: DualASR
    tokenizers: dict[str, Tokenizer]
    language: str
    name: str
    label: str
    mode: str
    outputs: tuple[str, ...]
    lms: dict[str, TokenLM] = field(default_factory=dict)
    decode: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)


# ------------------------------------------------------------------ writing


def package_run(run_dir: str | Path, out: str | Path, lms: dict[str, Path] | None = None,
                corpus: str | Path | None = None) -> Path:  # fmt: skip
    """Package the trained run in ``run_dir`` (``model.pt``, ``run.json``)
    into the file ``out``; returns it. ``lms``: output -> LM file to fuse;
    None takes the LMs the run's test decoding fused (``decode_<test split>.json``).
    ``corpus``: the corpus directory it was trained on, for provenance; None
    reads it from the study's ``corpora.json`` when the run lies in a study."""
    run_dir, out = Path(run_dir), Path(out)
    info = read_run_info(run_dir)
    ckpt = load_checkpoint(run_dir / MODEL_FILE)
    if ckpt["model_config"].get("pretrained") is not None:
        # transcribe computes fbank features and a package holds no pretrained directory's files.
        raise PackageError(f"{run_dir}: a model with a pretrained encoder cannot be packaged for learners yet; "
                           "decode it with `dualasr decode`")  # fmt: skip
    # Every test split of a run is decoded with the same settings and LMs: any one tells them.
    decoded = next((d for split in decoded_test_splits(run_dir) if (d := _read_json(run_dir / f"decode_{split}.json"))), {})
    if lms is None:
        lms = {o: Path(p) for o, p in decoded.get("lms", {}).items()}
    tensors = {f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in ckpt["model"].items()}
    lm_meta = {}
    for output, path in lms.items():
        if output not in info.outputs:
            raise PackageError(f"{path}: a language model for {output!r}, which {run_dir} does not output")
        lm = read_lm_checkpoint(path, Tokenizer.from_dict(ckpt["tokenizers"][output]))
        tensors |= {f"lm.{output}.{k}": v.detach().cpu().contiguous().clone() for k, v in lm["model"].items()}
        lm_meta[output] = {"lm_config": lm["lm_config"]}
    decode = {k: decoded[k] for k in ("beam", "ctc_weight", "length_penalty", "max_len_ratio", "lm_weight")
              if k in decoded}  # fmt: skip
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": info.name, "label": info.label,
        "mode": info.mode, "outputs": list(info.outputs), "language": info.language,
        "model_config": ckpt["model_config"], "tokenizers": ckpt["tokenizers"], "lms": lm_meta,
        "decode": decode, "provenance": provenance(run_dir, info.language, {o: ckpt["tokenizers"][o]["unit"] for o in info.outputs}, corpus),
    }  # fmt: skip
    text = json.dumps(meta, ensure_ascii=False, sort_keys=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        save_file(tensors, tmp, metadata={"dualasr": text, "checksum": _checksum(tensors, text)})
    return out


def _checksum(tensors: dict[str, torch.Tensor], meta_text: str) -> str:
    h = hashlib.sha256(state_checksum(tensors).encode())
    h.update(meta_text.encode())
    return f"sha256:{h.hexdigest()}"


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def provenance(run_dir: Path, language: str, units: dict[str, str], corpus: str | Path | None) -> dict:
    """What the run learnt from and how well it did (see the module docstring);
    ``units``: output -> its tokenizer's unit."""
    if corpus is None:  # a study's run lies in DIR/exp/<lang>/<name>/seed<k>
        corpora = _read_json(run_dir.resolve().parents[3] / CORPORA_FILE) or {}
        corpus = corpora.get(language)
    prov: dict = {"run": str(run_dir.resolve()), "language": language, "corpus": str(corpus) if corpus else None}
    train = Path(corpus) / "cuts_train.jsonl.gz" if corpus else None
    if train is not None and train.is_file():
        from dualasr.data.manifest import load_manifest, supervision
        from dualasr.data.synth.engines import all_voices

        cuts = load_manifest(train, check_audio=False)
        sups = [supervision(c) for c in cuts]
        # dualasr synth records each cut's engine; a corpus built otherwise from
        # its voices is still recognised by their voice ids as speakers.
        voices = {v.id: v.engine for v in all_voices(language)}
        engines = Counter((s.custom or {}).get("engine") or voices.get(s.speaker) for s in sups)
        engines.pop(None, None)
        prov |= {
            "train_utterances": len(sups), "train_hours": round(sum(c.duration for c in cuts) / 3600, 3),
            "speakers": len({s.speaker for s in sups}), "synthetic": bool(engines),
            "engines": dict(sorted(engines.items())),
        }  # fmt: skip
    prov["test_cer"] = {split: test_cer(run_dir, language, units, split) for split in decoded_test_splits(run_dir)}
    if prov.get("synthetic"):
        prov["note"] = (f"trained on synthetic voices only (dualasr synth: {', '.join(prov['engines'])}): "
                        "not reliable on real learners")  # fmt: skip
    elif "synthetic" in prov:
        prov["note"] = f"trained on {prov['corpus']}: reliable only on speech like it"
    else:
        prov["note"] = "training corpus unknown: judge its results with care"
    return prov


def decoded_test_splits(run_dir: Path) -> list[str]:
    """The test splits (``test``, ``test_seen``, ``test_unseen``, ...) the run
    was decoded on, from its ``decode_<split>.json`` files, sorted."""
    return sorted(p.stem.removeprefix("decode_") for p in Path(run_dir).glob("decode_test*.json"))


def test_cer(run_dir: Path, language: str, units: dict[str, str], split: str = "test") -> dict[str, float]:
    """Output -> error rate (%) of the run's decoded ``split``, from its sclite
    files ``hyp_<o>_<split>.trn`` / ``ref_<o>_<split>.trn``, counted as
    ``dualasr score`` counts it (:func:`dualasr.score.rates.count_errors`:
    characters, or phones for a phone output); outputs not decoded are left out."""
    out = {}
    for o, unit in units.items():
        try:
            refs, hyps = (_trn(run_dir / f"{kind}_{o}_{split}.trn") for kind in ("ref", "hyp"))
        except OSError:
            continue
        ids = sorted(refs)
        unit = "phone" if unit == "phone" else "char"
        text = (lambda t: " ".join(normalize_phones(t))) if unit == "phone" else (lambda t: normalize(t, language))
        ref_len, errors = count_errors([text(refs[i]) for i in ids], [text(hyps.get(i, "")) for i in ids], unit)
        if ref_len.sum():
            out[o] = round(corpus_rate(errors, ref_len), 2)
    return out


def _trn(path: Path) -> dict[str, str]:
    """sclite ``text (id)`` lines -> id -> text."""
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        text, _, uid = line.rstrip(")").rpartition(" (")
        rows[uid] = text
    return rows


# ------------------------------------------------------------------ reading


def read_header(path: Path) -> dict:
    """The ``dualasr`` metadata of a package file, after checking it is one
    (foreign, truncated and incompatible files are errors naming ``path``)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else None
            header = f.read(n) if n is not None and n <= _MAX_HEADER else b""
    except FileNotFoundError:
        raise PackageError(f"{path}: no such package") from None
    except OSError as e:
        raise PackageError(f"{path}: unreadable ({e})") from None
    if n is None or n > _MAX_HEADER or not header.startswith(b"{"):
        raise PackageError(f"{path}: not a dualasr package (make one with `dualasr package`)")
    if len(header) < n:
        raise PackageError(f"{path}: truncated package ({size} bytes, its header alone promises {8 + n})")
    try:
        entries = json.loads(header)
        meta = json.loads(entries["__metadata__"]["dualasr"])
        fmt = meta["format"]
    except (ValueError, KeyError, TypeError):
        raise PackageError(f"{path}: not a dualasr package (a safetensors file without dualasr metadata)") from None
    if fmt != FORMAT:
        raise PackageError(f"{path}: not a dualasr package (format {fmt!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise PackageError(f"{path}: package format version {meta.get('format_version')!r}; this dualasr reads "
                           f"version {FORMAT_VERSION}: package the run again with this version")  # fmt: skip
    data = max((e["data_offsets"][1] for k, e in entries.items() if k != "__metadata__"), default=0)
    if size < 8 + n + data:
        raise PackageError(f"{path}: truncated package ({size} bytes of {8 + n + data})")
    return meta


def load_package(path: str | Path, device: torch.device | str = "cpu") -> Package:
    """The package at ``path``, its checksum verified, the model in eval mode on ``device``."""
    path = Path(path)
    meta = read_header(path)
    try:
        with safe_open(path, "pt") as f:
            stored = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise PackageError(f"{path}: corrupt package ({e})") from None
    if stored.get("checksum") != _checksum(tensors, stored["dualasr"]):
        raise PackageError(f"{path}: checksum mismatch: the package was changed or is corrupt; not loaded")
    tokenizers = {o: Tokenizer.from_dict(t) for o, t in meta["tokenizers"].items()}
    model = build_model(ModelConfig.model_validate(meta["model_config"]), {o: len(t) for o, t in tokenizers.items()})
    try:
        model.load_state_dict(_prefixed(tensors, "model."))
    except RuntimeError as e:
        raise PackageError(f"{path}: weights do not fit the packaged model config ({e})") from None
    model.language = meta["language"]
    lms = {}
    for output, lm_meta in meta["lms"].items():
        lm = TokenLM(len(tokenizers[output]), LMConfig.model_validate(lm_meta["lm_config"]))
        lm.load_state_dict(_prefixed(tensors, f"lm.{output}."))
        lms[output] = lm.to(device).eval()
    return Package(path, model.to(device).eval(), tokenizers, meta["language"], meta["name"], meta["label"],
                   meta["mode"], tuple(meta["outputs"]), lms, meta["decode"], meta["provenance"])  # fmt: skip


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
