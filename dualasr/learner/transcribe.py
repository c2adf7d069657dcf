"""``transcribe``: a learner's recording -> what they said, what they meant,
when, and where the two differ (the JSON contract of ``docs/transcribe.md``).

One encoder pass serves everything: the joint CTC/attention beam search of
every output (:func:`dualasr.decode.search.decode_encoded`, with the package's
language models), and CTC forced alignment of the surface hypothesis over the
surface CTC head (:mod:`dualasr.learner.align`). Meaning words are timed
through their alignment to the surface words (:mod:`dualasr.learner.diff`).

Confidence of a token is the mean CTC posterior of the frames aligned to it;
of a word, the mean over its tokens; of the result, the mean over surface
words. A result below :data:`RELIABLE_CONFIDENCE` is marked ``reliable:
false`` with a warning: on average the model then gives its own best path
less than even odds, which in practice means audio unlike its training data.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from dualasr.data.features import SAMPLE_RATE, extractor
from dualasr.data.manifest import wav_shortfall
from dualasr.decode.search import decode_encoded
from dualasr.errors import DualasrError
from dualasr.text.normalize import normalize, normalize_phones

from .align import AlignmentError, WordSpan, extend_word_ends, forced_align, word_spans
from .diff import WordDiff, diff_words
from .package import Package

#: JSON contract version of :meth:`Transcription.to_dict`.
VERSION = 1
#: Below this mean surface-word confidence a result is not feedback (module docstring).
RELIABLE_CONFIDENCE = 0.5
#: Shortest audio the x4 subsampling front end can encode: 7 feature frames of 10 ms.
MIN_SECONDS = 0.1
#: 100-ns ticks per second: Azure Pronunciation Assessment's Offset / Duration unit.
TICKS = 10_000_000


class AudioError(DualasrError):
    """Audio that cannot be transcribed: not audio, empty, truncated, too short."""


def load_audio(source: str | Path | bytes | np.ndarray, name: str | None = None) -> tuple[np.ndarray, float]:
    """``(samples, seconds)``: float32 mono ``(samples,)`` at 16 kHz from a
    file path, the bytes of a file (any format libsndfile reads: WAV, FLAC,
    OGG, MP3, ...; any rate, resampled with soxr; channels averaged), or a
    float array already at 16 kHz mono. ``name`` names the source in errors."""
    name = name or (str(source) if isinstance(source, str | Path) else type(source).__name__)
    if isinstance(source, np.ndarray):
        if source.ndim != 1 or not np.issubdtype(source.dtype, np.floating):
            raise AudioError(f"{name}: expected float samples (samples,) at 16 kHz mono, got {source.dtype} {source.shape}")
        audio, rate = source.astype(np.float32), SAMPLE_RATE
    else:
        data = source if isinstance(source, bytes) else str(source)
        if isinstance(data, bytes) and not data:
            raise AudioError(f"{name}: empty file")
        try:
            shortfall = wav_shortfall(data)
            audio, rate = sf.read(io.BytesIO(data) if isinstance(data, bytes) else data, dtype="float32", always_2d=True)
        except FileNotFoundError:
            raise AudioError(f"{name}: no such file") from None
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            raise AudioError(f"{name}: not audio that can be read ({e})") from None
        if shortfall:
            raise AudioError(f"{name}: truncated WAV ({shortfall[1]} of the {shortfall[0]} data bytes its header promises)")
        audio = audio.mean(axis=1)
        if rate != SAMPLE_RATE and len(audio):
            audio = soxr.resample(audio, rate, SAMPLE_RATE).astype(np.float32)
    seconds = len(audio) / SAMPLE_RATE
    if not len(audio) or not np.any(audio):
        raise AudioError(f"{name}: no sound (empty or silent)")
    if seconds < MIN_SECONDS:
        raise AudioError(f"{name}: {seconds:.3f} s of audio; at least {MIN_SECONDS} s is needed")
    return audio, seconds


@dataclass
class Transcription:
    """A transcribed recording. Times in seconds; :meth:`to_dict` gives the
    JSON contract (times there in 100-ns ticks)."""

    duration: float
    model: dict
    surface: str | None
    surface_words: list[WordSpan]
    meaning: str | None
    meaning_source: str
    meaning_words: list[WordSpan]
    diff: list[WordDiff]
    reliable: bool
    warnings: list[str] = field(default_factory=list)
    source: str | None = None

    def to_dict(self) -> dict:
        """The JSON object of ``docs/transcribe.md`` (version :data:`VERSION`)."""
        audio = {"duration": round(self.duration, 3), "sample_rate": SAMPLE_RATE}
        if self.source:
            audio["file"] = self.source
        surface = None
        if self.surface is not None:
            words = [{"Word": w.text, **_ticks(w.start, w.end), "Confidence": round(w.confidence, 4)}
                     for w in self.surface_words]  # fmt: skip
            surface = {"text": self.surface, "words": words}
        meaning = None
        if self.meaning is not None:
            words = [{"Word": w.text, **_ticks(w.start, w.end)} for w in self.meaning_words]
            meaning = {"text": self.meaning, "source": self.meaning_source, "words": words}
        diff = [
            {"ErrorType": d.error_type, "Expected": d.expected, "Heard": d.heard, **_ticks(d.start, d.end),
             "AccuracyScore": round(d.accuracy, 1),
             "Confidence": None if d.confidence is None else round(d.confidence, 4),
             "chars": [{"op": u.op, "expected": u.expected, "heard": u.heard} for u in d.units]}
            for d in self.diff
        ]  # fmt: skip
        return {"version": VERSION, "audio": audio, "model": self.model, "surface": surface, "meaning": meaning,
                "diff": diff, "reliable": self.reliable, "warnings": list(self.warnings)}  # fmt: skip


def _ticks(start: float, end: float) -> dict[str, int]:
    return {"Offset": round(start * TICKS), "Duration": round((end - start) * TICKS)}


def transcribe(
    package: Package,
    audio: str | Path | bytes | np.ndarray,
    *,
    text: str | None = None,
    beam: int | None = None,
    ctc_weight: float | None = None,
    lm_weight: float | dict[str, float] | None = None,
    **decode_options,
) -> Transcription:
    """Transcribe one recording (see :func:`load_audio` for ``audio``).

    ``text``: the sentence the learner meant; it replaces the meaning output
    (normalised as training text was) and is diffed against what was heard.
    ``beam``, ``ctc_weight``, ``lm_weight`` and ``decode_options``
    (``length_penalty``, ``max_len_ratio``, ``pre_beam_ratio``) default to the
    settings the packaged run was tested with.

    A single-output model has one side only: a surface-only model gives a diff
    only with ``text``; a meaning-only model gives its meaning (timed by its
    own CTC head when it has one) and no diff. Both say so in ``warnings``.
    """
    waveform, duration = load_audio(audio)
    model, device = package.model, next(package.model.parameters()).device
    options = {**package.decode, **decode_options}
    options |= {k: v for k, v in {"beam": beam, "ctc_weight": ctc_weight, "lm_weight": lm_weight}.items() if v is not None}
    feats = torch.from_numpy(extractor().extract(waveform, SAMPLE_RATE))[None].to(device)
    lens = torch.tensor([feats.size(1)], device=device)
    warnings = [package.provenance["note"]] if package.provenance.get("note") else []
    with torch.inference_mode():
        enc = model.encode(feats, lens)
        hyps = decode_encoded(model, enc, beam=options.get("beam", 5), ctc_weight=options.get("ctc_weight", 0.3),
                              length_penalty=options.get("length_penalty"),
                              max_len_ratio=options.get("max_len_ratio", 1.0),
                              pre_beam_ratio=options.get("pre_beam_ratio", 1.5),
                              lms=package.lms, lm_weight=options.get("lm_weight", 0.0))  # fmt: skip
        # The side that is timed and diffed as "heard": surface, or a meaning-only model's meaning.
        heard = "surface" if "surface" in model.outputs else "meaning"
        tok = package.tokenizers[heard]
        tokens = hyps[heard][0].tokens
        words: list[WordSpan] = []
        if heard in model.ctcs:
            try:
                spans = word_spans(forced_align(model.ctcs[heard].log_probs(enc.ctc_in[heard])[0], tokens), tok)
                words = extend_word_ends(spans, waveform, SAMPLE_RATE)
            except AlignmentError as e:
                warnings.append(f"no word times: {e}")
        else:
            warnings.append(f"the {heard} output has no CTC head: no word times or confidences")
    heard_text = tok.decode(tokens)
    meaning, source, diff, meaning_words = None, "model", [], []
    if heard == "meaning":
        meaning, meaning_words = heard_text, words
        warnings.append("meaning-only model: no surface output, so no pronunciation diff"
                        + ("; the given text is not used" if text is not None else ""))  # fmt: skip
    else:
        if text is not None:
            meaning, source = _normalised(text, package), "user"
        elif "meaning" in model.outputs:
            meaning = package.tokenizers["meaning"].decode(hyps["meaning"][0].tokens)
        else:
            warnings.append("single-output (surface) model: no meaning output and so no diff; pass the intended "
                            "sentence (text=, --text) to compare what was said with it")  # fmt: skip
        if meaning is not None:
            diff = diff_words(meaning.split(), words, tok.unit)
            meaning_words = [WordSpan(d.expected, d.start, d.end, d.confidence or 0.0) for d in diff if d.expected]
    confidence = float(np.mean([w.confidence for w in words])) if words else 0.0
    reliable = confidence >= RELIABLE_CONFIDENCE
    if not reliable:
        warnings.append(f"low confidence ({confidence:.2f} < {RELIABLE_CONFIDENCE}): the model is unsure of what "
                        "it heard; do not use this as pronunciation feedback")  # fmt: skip
    model_info = {"name": package.name, "label": package.label, "language": package.language,
                  "outputs": list(package.outputs), "trained_on": package.provenance}  # fmt: skip
    return Transcription(
        duration, model_info, heard_text if heard == "surface" else None, words,
        meaning, source, meaning_words, diff, reliable, warnings,
        str(audio) if isinstance(audio, str | Path) else None,
    )  # fmt: skip


def _normalised(text: str, package: Package) -> str:
    """The learner's intended sentence in the units of the heard side."""
    if package.tokenizers["surface"].unit == "phone":
        return " ".join(normalize_phones(text))
    return normalize(text, package.language)
