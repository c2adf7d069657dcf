"""Dual-transcription manifests: Lhotse CutSets carrying surface and meaning.

An utterance is one Lhotse ``MonoCut`` with one ``SupervisionSegment`` whose
``text`` is the meaning form (so Lhotse tools that read ``text`` see the
intended sentence) and whose ``custom`` fields hold:

- ``surface``: what was pronounced (required), ``meaning``: what was intended (required);
- ``l1`` (speaker's first language), ``surface_phones`` and ``canonical_phones``
  (lists of ARPAbet phones, phone-annotated corpora only), and any corpus
  metadata a preparer keeps (scores, error lists, ED rule names).

Manifests are ``jsonl.gz`` files named ``cuts_<split>.jsonl.gz``. Loading
validates every line (unreadable audio, empty transcripts, duplicate ids,
unknown languages): an error names the file and line, or, with
``skip_invalid``, the line is skipped and recorded with its reason so nothing
is lost silently. Writes are atomic and never overwrite an existing file unless
asked to. Multichannel audio is heard as the mean of its channels
(:class:`DownmixMono`), so speech on any channel reaches features and models.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment
from lhotse.augmentation import AudioTransform
from lhotse.serialization import deserialize_item
from lhotse.utils import fastcopy

from dualasr.atomic import atomic_path, atomic_write_text
from dualasr.errors import DualasrError
from dualasr.text.divergence import divergence
from dualasr.text.normalize import LANGUAGES, normalize, normalize_phones

SPLITS = ("train", "dev", "test")
# Columns of the plain JSONL / CSV exchange format, in order.
COLUMNS = (
    "id", "audio", "language", "speaker", "surface", "meaning",
    "offset", "duration", "l1", "surface_phones", "canonical_phones",
)  # fmt: skip


class ManifestError(DualasrError, ValueError):
    """Bad manifest or corpus input; the message names the file and line."""


@dataclass
class Utterance:
    """One dual-transcribed utterance, as a preparer or importer sees it.

    ``offset`` and ``duration`` are in seconds; ``duration=None`` means the rest
    of the audio file. ``recording`` may be given instead of reading ``audio``'s
    header (e.g. headerless PCM read through a command source).
    """

    id: str
    audio: str
    language: str
    speaker: str
    surface: str
    meaning: str
    offset: float = 0.0
    duration: float | None = None
    l1: str | None = None
    surface_phones: list[str] | None = None
    canonical_phones: list[str] | None = None
    custom: dict = field(default_factory=dict)
    recording: Recording | None = None


@dataclass(frozen=True)
class Skipped:
    """An input item left out under ``skip_invalid``, with where it was and why."""

    id: str
    source: str  # "file:line"
    reason: str


# --------------------------------------------------------------------------- cuts


def utterance_problems(utt: Utterance) -> list[str]:
    """Reasons ``utt`` cannot be used (empty list = valid). Reads no audio."""
    problems = []
    if not utt.id or any(c.isspace() for c in utt.id):
        problems.append(f"bad utterance id {utt.id!r} (empty or contains whitespace)")
    if utt.language not in LANGUAGES:
        problems.append(f"unknown language {utt.language!r} (expected one of {', '.join(LANGUAGES)})")
    for side in ("surface", "meaning"):
        text = getattr(utt, side)
        if not text.strip():
            problems.append(f"empty {side} transcript")
        elif utt.language in LANGUAGES and not normalize(text, utt.language):
            # The tokenizers see the normalised text: an empty one would train
            # and score on nothing.
            problems.append(f"{side} transcript {text!r} is empty once normalised as {utt.language!r}")
    if not utt.speaker:
        problems.append("empty speaker")
    if not (math.isfinite(utt.offset) and utt.offset >= 0):
        problems.append(f"offset must be a finite number of seconds >= 0, got {utt.offset}")
    if utt.duration is not None and not (math.isfinite(utt.duration) and utt.duration > 0):
        problems.append(f"duration must be a finite number of seconds > 0, got {utt.duration}")
    return problems


@dataclass
class DownmixMono(AudioTransform):
    """Average all channels of a recording into one: ``(channels, samples)`` ->
    ``(1, samples)``. Lhotse registers every ``AudioTransform`` subclass by name,
    so a manifest naming this transform loads wherever dualasr is imported."""

    def __call__(self, samples: np.ndarray, sampling_rate: int) -> np.ndarray:
        return samples.mean(axis=0, keepdims=True, dtype=np.float32) if samples.ndim == 2 else samples

    def reverse_timestamps(self, offset, duration, sampling_rate):
        return offset, duration


def _downmixed(rec: Recording) -> Recording:
    """``rec`` heard as one channel, the mean of all of its channels.

    Lhotse reads a MonoCut's one channel only (channel 0 of a stereo file, which
    can be silent), and its own downmix (``MultiCut.to_mono(mono_downmix=True)``)
    embeds the mixed audio in the manifest. Instead the file source is declared as
    the recording's single channel 0: Lhotse then drops no file channel (it
    removes channels by their position in the source's list) and
    :class:`DownmixMono`, the first transform, averages them before resampling.
    """
    if rec.num_channels == 1:
        return rec
    if len(rec.sources) != 1:
        raise ManifestError(f"recording {rec.id}: multichannel audio from several sources is not supported")
    return fastcopy(
        rec,
        sources=[fastcopy(rec.sources[0], channels=[0])],
        channel_ids=[0],
        transforms=[DownmixMono().to_dict(), *(rec.transforms or [])],
    )


def wav_shortfall(source: str | bytes) -> tuple[int, int] | None:
    """``(bytes promised, bytes present)`` of a WAV file's ``data`` chunk when the
    file (a path, or its bytes) holds fewer bytes than its header promises, else None.

    libsndfile (soundfile, Lhotse) silently reports the frames present, so a
    truncated WAV reads as shorter audio; only its free-text log notes the
    mismatch. The RIFF chunk sizes are read with ``struct`` instead: Python's
    ``wave`` does the same walk but refuses float and extensible (multichannel)
    WAVs. Streamed WAVs whose writer did not know the length (size 0 or
    0xFFFFFFFF) are left to libsndfile."""
    if isinstance(source, bytes):
        size, opened = len(source), io.BytesIO(source)
    else:
        size, opened = os.path.getsize(source), open(source, "rb")
    with opened as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            cid, csize = struct.unpack("<4sI", chunk)
            if cid == b"data":
                present = size - f.tell()
                return (csize, present) if present < csize < 0xFFFFFFFF else None
            f.seek(csize + (csize & 1), os.SEEK_CUR)


def to_cut(utt: Utterance) -> MonoCut:
    """Build the Lhotse cut of ``utt``; reads the audio header unless a recording is given.

    Raises ``ManifestError`` naming the audio file when it is missing or unreadable.
    """
    rec = utt.recording
    if rec is None:
        try:
            rec = Recording.from_file(utt.audio, recording_id=utt.id)
            shortfall = wav_shortfall(utt.audio)
        except Exception as e:  # soundfile/lhotse raise several types for one cause
            raise ManifestError(f"{utt.audio}: missing or unreadable audio ({_short(e)})") from None
        if shortfall:
            raise ManifestError(
                f"{utt.audio}: truncated WAV: its header promises {shortfall[0]} bytes of audio, "
                f"the file holds {shortfall[1]}"
            )
    rec = _downmixed(rec)
    duration = utt.duration if utt.duration is not None else rec.duration - utt.offset
    if utt.offset < 0 or duration <= 0 or utt.offset + duration > rec.duration + 1e-3:
        raise ManifestError(
            f"{utt.audio}: segment [{utt.offset}, {utt.offset + duration}] s is outside the "
            f"audio ({rec.duration:.3f} s)"
        )
    custom = {"surface": utt.surface, "meaning": utt.meaning, **utt.custom}
    for key in ("l1", "surface_phones", "canonical_phones"):
        if getattr(utt, key) is not None:
            custom[key] = getattr(utt, key)
    sup = SupervisionSegment(
        id=utt.id,
        recording_id=rec.id,
        start=utt.offset,
        duration=duration,
        channel=0,
        text=utt.meaning,
        language=utt.language,
        speaker=utt.speaker,
        custom=custom,
    )
    return MonoCut(
        id=utt.id, start=utt.offset, duration=duration, channel=0, supervisions=[sup], recording=rec
    )


def cuts_from_utterances(
    utts: Iterable[tuple[str, Utterance]],
    skip_invalid: bool = False,
    skipped: list[Skipped] | None = None,
) -> CutSet:
    """Validate ``(source, utterance)`` pairs and build a CutSet.

    ``source`` ("file:line") is what an error names. Without ``skip_invalid`` the
    first problem raises ``ManifestError``; with it, bad items are appended to
    ``skipped`` and left out.
    """
    cuts: dict[str, MonoCut] = {}
    for source, utt in utts:
        problems = utterance_problems(utt)
        if not problems and utt.id in cuts:
            problems = [f"duplicate utterance id {utt.id!r}"]
        cut = None
        if not problems:
            try:
                cut = to_cut(utt)
            except ManifestError as e:
                problems = [str(e)]
        if problems:
            if not skip_invalid:
                raise ManifestError(f"{source}: utterance {utt.id!r}: {'; '.join(problems)}")
            if skipped is not None:
                skipped.append(Skipped(utt.id, source, "; ".join(problems)))
            continue
        cuts[utt.id] = cut
    return CutSet.from_cuts(cuts.values())


def supervision(cut) -> SupervisionSegment:
    """The one dual-transcribed supervision of a dualasr cut."""
    if len(cut.supervisions) != 1:
        raise ManifestError(f"cut {cut.id}: expected 1 supervision, found {len(cut.supervisions)}")
    return cut.supervisions[0]


def target_text(cut, output: str, unit: str) -> str:
    """The reference an output learns and is decoded against: its phones
    (space-separated) when the tokenizer ``unit`` is ``phone``, else the cut's
    surface or meaning text."""
    custom = supervision(cut).custom or {}
    if unit == "phone":
        phones = custom.get(f"{output}_phones") or (custom.get("canonical_phones") if output == "meaning" else None)
        if phones is None:
            raise ManifestError(f"cut {cut.id}: {output} tokenizer is phone-level but the cut has no {output}_phones")
        return " ".join(phones)
    return custom[output]


def cut_divergence(cut, unit: str = "char") -> int:
    """Divergence of a cut, measured on what is scored: ED between surface and
    canonical phones (both through ``normalize_phones``) when the cut carries
    both phone sequences, else between surface and meaning text (both through
    ``normalize`` for the cut's language), in ``unit``.

    Error rates are computed on the same normalised forms
    (:mod:`dualasr.score.rates`), so an utterance stored as ``"Hello, World!"``
    / ``"hello world"`` has divergence 0, as its CER sees it; corpus statistics,
    ED bins and the gap tables all bin through this function.
    """
    sup = supervision(cut)
    custom = sup.custom or {}
    if custom.get("surface_phones") is not None and custom.get("canonical_phones") is not None:
        return divergence(
            normalize_phones(custom["surface_phones"]), normalize_phones(custom["canonical_phones"]), "phone"
        )
    lang = sup.language
    return divergence(normalize(custom["surface"], lang), normalize(custom["meaning"], lang), unit)


# ------------------------------------------------------------------ manifest files


def _text_lines(path: Path, what: str) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a UTF-8 text file (gzipped when named ``.gz``).

    Lines are decoded one by one so that bad bytes are reported with their line
    (a text-mode file fails somewhere in a block); a leading byte-order mark, as
    spreadsheets write it, is dropped. ``what`` names the expected input in errors.
    """
    if path.is_dir():
        raise ManifestError(f"{path}: is a directory; expected {what}")
    if not path.is_file():
        raise ManifestError(f"{path}: not found; expected {what}")
    lineno = 0
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    yield lineno, raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
                except UnicodeDecodeError as e:
                    raise ManifestError(
                        f"{path}:{lineno}: not UTF-8 text (byte {raw[e.start]:#04x} at column {e.start + 1})"
                    ) from None
    except (OSError, EOFError, zlib.error) as e:  # gzip reports truncation as EOFError
        raise ManifestError(f"{path}: cannot read after line {lineno} ({_short(e)})") from None


def _short(e: Exception) -> str:
    return str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__


def _cut_problems(cut, check_audio: bool) -> list[str]:
    if not isinstance(cut, MonoCut):
        return [f"expected a MonoCut, got {type(cut).__name__}"]
    try:
        sup = supervision(cut)
    except ManifestError as e:
        return [str(e)]
    custom = sup.custom or {}
    utt = Utterance(
        id=cut.id,
        audio="",
        language=sup.language or "",
        speaker=sup.speaker or "",
        surface=str(custom.get("surface") or ""),
        meaning=str(custom.get("meaning") or ""),
        offset=cut.start,
        duration=cut.duration,
    )
    problems = utterance_problems(utt)
    if check_audio and cut.recording is not None:
        for src in cut.recording.sources:
            if src.type == "file":
                try:
                    sf.info(src.source)
                except Exception as e:
                    problems.append(f"{src.source}: missing or unreadable audio ({_short(e)})")
            elif src.type == "command":
                # A command source (e.g. headerless PCM through sox) is checked
                # by the file it names, when it names one that exists.
                pass
    elif cut.recording is None:
        problems.append("cut has no recording")
    return problems


def load_manifest(
    path: str | Path,
    skip_invalid: bool = False,
    skipped: list[Skipped] | None = None,
    check_audio: bool = True,
) -> CutSet:
    """Read and validate a dualasr manifest (``.jsonl.gz`` or ``.jsonl``).

    Every line must be a Lhotse cut with one supervision carrying non-empty
    ``surface`` and ``meaning``, a known language, a unique id and (when
    ``check_audio``) readable audio. Errors name ``file:line``. With
    ``skip_invalid`` bad lines are appended to ``skipped`` instead.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    cuts: dict[str, MonoCut] = {}
    # Line by line through _text_lines: bad bytes and truncation are named by line.
    for lineno, line in _text_lines(path, "a dualasr manifest (.jsonl or .jsonl.gz)"):
        if not line.strip():
            continue
        source = f"{path}:{lineno}"
        cut, cid = None, "?"
        try:
            data = json.loads(line)
            cid = str(data.get("id", "?")) if isinstance(data, dict) else "?"
            cut = deserialize_item(data)
            problems = _cut_problems(cut, check_audio)
        except Exception as e:  # JSON or Lhotse schema errors
            problems = [f"not a Lhotse cut ({_short(e)})"]
        if not problems and cut.id in cuts:
            problems = [f"duplicate utterance id {cut.id!r}"]
        if problems:
            if not skip_invalid:
                raise ManifestError(f"{source}: utterance {cid!r}: {'; '.join(problems)}")
            if skipped is not None:
                skipped.append(Skipped(cid, source, "; ".join(problems)))
            continue
        cuts[cut.id] = cut
    return CutSet.from_cuts(cuts.values())


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Report a failed write (read-only or full disk, a directory in the way) as
    a ManifestError naming ``path``. FileExistsError passes: it already says
    what to do (``--overwrite``)."""
    try:
        yield
    except FileExistsError:
        raise
    except OSError as e:
        raise ManifestError(f"{path}: cannot write ({e.strerror or _short(e)})") from None


def check_manifest_name(path: str | Path) -> None:
    """Refuse a manifest name Lhotse would not read back as JSONL (it picks the
    format, and gzip, from the suffixes)."""
    if not Path(path).name.endswith((".jsonl", ".jsonl.gz")):
        raise ManifestError(f"{path}: a manifest name must end in .jsonl or .jsonl.gz")


def write_manifest(cuts: CutSet, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``cuts`` atomically as JSONL (gzipped when the name ends in ``.gz``)."""
    path = Path(path)
    check_manifest_name(path)
    # Keep the real suffixes on the temporary name: Lhotse picks gzip from them.
    with _writing(path), atomic_path(path, overwrite, suffix="".join(path.suffixes)) as tmp:
        cuts.to_file(tmp)
    return path


def write_skipped(skipped: list[Skipped], path: str | Path, overwrite: bool = True) -> None:
    """Write the skipped items as TSV ``id<TAB>source<TAB>reason`` (atomic)."""
    lines = ["id\tsource\treason"] + [f"{s.id}\t{s.source}\t{s.reason}" for s in skipped]
    with _writing(Path(path)):
        atomic_write_text(path, "\n".join(lines) + "\n", overwrite=overwrite)


# --------------------------------------------------------------- import / export


def _phones(value) -> list[str] | None:
    if value is None or value == "":
        return None
    return value.split() if isinstance(value, str) else [str(p) for p in value]


def _row_to_utterance(row: dict, base: Path, source: str) -> Utterance:
    missing = [k for k in ("id", "audio", "language", "speaker", "surface", "meaning") if k not in row]
    if missing:
        raise ManifestError(f"{source}: missing field(s) {', '.join(missing)}")
    audio = str(row["audio"])
    if not os.path.isabs(audio):
        audio = str(base / audio)
    try:
        offset = float(row.get("offset") or 0.0)
        duration = float(row["duration"]) if row.get("duration") not in (None, "") else None
    except (TypeError, ValueError):
        raise ManifestError(f"{source}: offset/duration must be numbers") from None
    return Utterance(
        id=str(row["id"]),
        audio=audio,
        language=str(row["language"]),
        speaker=str(row["speaker"]),
        surface=str(row["surface"] or ""),
        meaning=str(row["meaning"] or ""),
        offset=offset,
        duration=duration,
        l1=row.get("l1") or None,
        surface_phones=_phones(row.get("surface_phones")),
        canonical_phones=_phones(row.get("canonical_phones")),
    )


def read_jsonl(path: str | Path) -> Iterator[tuple[str, Utterance]]:
    """Utterances of a plain JSONL file: one object per line with :data:`COLUMNS`
    (relative audio paths are relative to the file's directory)."""
    path = Path(path)
    for lineno, line in _text_lines(path, "a JSONL file"):
        if not line.strip():
            continue
        source = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ManifestError(f"{source}: invalid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise ManifestError(f"{source}: expected a JSON object")
        yield source, _row_to_utterance(row, path.parent, source)


def read_csv(path: str | Path) -> Iterator[tuple[str, Utterance]]:
    """Utterances of a CSV file with a header row naming :data:`COLUMNS`
    (phones space-separated)."""
    path = Path(path)
    # csv reads any iterable of lines, including quoted fields spanning lines.
    reader = csv.DictReader(line for _, line in _text_lines(path, "a CSV file"))
    for row in reader:
        source = f"{path}:{reader.line_num}"
        yield source, _row_to_utterance(row, path.parent, source)


def _read_kaldi_map(path: Path, required: bool = True) -> dict[str, tuple[str, int]]:
    """``utt-id rest-of-line`` -> (rest, line number)."""
    if not path.exists():
        if required:
            raise ManifestError(f"{path}: missing (a Kaldi data directory needs it)")
        return {}
    out: dict[str, tuple[str, int]] = {}
    for lineno, line in _text_lines(path, "a Kaldi text file"):
        # Kaldi separates the id from the rest by any run of spaces or tabs.
        parts = line.split(maxsplit=1)
        if not parts:
            continue
        if parts[0] in out:
            raise ManifestError(f"{path}:{lineno}: duplicate id {parts[0]!r}")
        out[parts[0]] = (parts[1].strip() if len(parts) > 1 else "", lineno)
    return out


def read_kaldi(data_dir: str | Path, language: str | None = None) -> Iterator[tuple[str, Utterance]]:
    """Utterances of a Kaldi-style data directory.

    Files: ``wav.scp`` (recording id -> audio path; pipe commands are not
    supported), ``text.surface``, ``text.meaning``, ``utt2spk``, optionally
    ``segments`` (utt rec start end), ``utt2lang`` (else ``language`` is used
    for every utterance), ``utt2l1``.
    """
    d = Path(data_dir)
    if not d.is_dir():
        state = "is a file" if d.exists() else "not found"
        raise ManifestError(f"{d}: {state}; expected a Kaldi data directory")
    wav = _read_kaldi_map(d / "wav.scp")
    surface = _read_kaldi_map(d / "text.surface")
    meaning = _read_kaldi_map(d / "text.meaning")
    spk = _read_kaldi_map(d / "utt2spk")
    segments = _read_kaldi_map(d / "segments", required=False)
    lang = _read_kaldi_map(d / "utt2lang", required=False)
    l1 = _read_kaldi_map(d / "utt2l1", required=False)
    if not lang and language is None:
        raise ManifestError(f"{d}: no utt2lang file; pass the language (--language en|ko)")
    for path, lineno in wav.values():
        if path.endswith("|"):
            raise ManifestError(f"{d / 'wav.scp'}:{lineno}: pipe commands are not supported; give a file path")
    for utt_id, (_, lineno) in surface.items():
        source = f"{d / 'text.surface'}:{lineno}"
        if segments:
            if utt_id not in segments:
                raise ManifestError(f"{source}: {utt_id!r} has no line in {d / 'segments'}")
            seg, seg_line = segments[utt_id]
            try:
                rec_id, start, end = seg.split()
                offset, duration = float(start), float(end) - float(start)
            except ValueError:
                raise ManifestError(f"{d / 'segments'}:{seg_line}: expected 'utt rec start end'") from None
        else:
            rec_id, offset, duration = utt_id, 0.0, None
        for name, table in (("wav.scp", wav), ("text.meaning", meaning), ("utt2spk", spk)):
            key = rec_id if name == "wav.scp" else utt_id
            if key not in table:
                raise ManifestError(f"{source}: {key!r} has no line in {d / name}")
        audio = wav[rec_id][0]
        yield source, Utterance(
            id=utt_id,
            audio=audio if os.path.isabs(audio) else str(d / audio),
            language=lang[utt_id][0] if utt_id in lang else str(language),
            speaker=spk[utt_id][0],
            surface=surface[utt_id][0],
            meaning=meaning[utt_id][0],
            offset=offset,
            duration=duration,
            l1=l1[utt_id][0] if utt_id in l1 else None,
        )
    extra = set(meaning) - set(surface)
    if extra:
        raise ManifestError(f"{d / 'text.meaning'}: {len(extra)} id(s) absent from text.surface, e.g. {min(extra)!r}")


def cut_to_row(cut) -> dict:
    """The plain exchange row (:data:`COLUMNS`) of a cut whose audio is one file."""
    sup = supervision(cut)
    custom = sup.custom or {}
    sources = cut.recording.sources
    audio = sources[0].source if len(sources) == 1 and sources[0].type == "file" else None
    if audio is None:
        raise ManifestError(f"cut {cut.id}: audio is not a single file; cannot export it as a path")
    return {
        "id": cut.id,
        "audio": audio,
        "language": sup.language,
        "speaker": sup.speaker,
        "surface": custom["surface"],
        "meaning": custom["meaning"],
        "offset": cut.start,
        "duration": cut.duration,
        "l1": custom.get("l1"),
        "surface_phones": custom.get("surface_phones"),
        "canonical_phones": custom.get("canonical_phones"),
    }


def export_jsonl(cuts: CutSet, path: str | Path, overwrite: bool = False) -> None:
    lines = [json.dumps(cut_to_row(c), ensure_ascii=False) for c in cuts]
    with _writing(Path(path)):
        atomic_write_text(path, "\n".join(lines) + "\n", overwrite)


def export_csv(cuts: CutSet, path: str | Path, overwrite: bool = False) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    for cut in cuts:
        row = cut_to_row(cut)
        for key in ("surface_phones", "canonical_phones"):
            row[key] = " ".join(row[key]) if row[key] else ""
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    with _writing(Path(path)):
        atomic_write_text(path, buf.getvalue(), overwrite)


# Every file :func:`read_kaldi` reads (and :func:`export_kaldi` writes).
KALDI_FILES = ("wav.scp", "text.surface", "text.meaning", "utt2spk", "utt2lang", "segments", "utt2l1")


def export_kaldi(cuts: CutSet, data_dir: str | Path, overwrite: bool = False) -> None:
    """Write a Kaldi data directory (see :func:`read_kaldi`); ``segments`` is
    written when a cut covers only part of its audio file."""
    d = Path(data_dir)
    rows = sorted((cut_to_row(c) for c in cuts), key=lambda r: r["id"])
    wav: dict[str, str] = {}
    segments, files = [], {n: [] for n in ("text.surface", "text.meaning", "utt2spk", "utt2lang")}
    for r, cut in zip(rows, sorted(cuts, key=lambda c: c.id), strict=True):
        rec_id = cut.recording.id
        wav[rec_id] = r["audio"]
        whole = cut.start == 0 and abs(cut.duration - cut.recording.duration) < 1e-3 and rec_id == r["id"]
        if not whole:
            segments.append(f"{r['id']} {rec_id} {cut.start:.3f} {cut.start + cut.duration:.3f}")
        files["text.surface"].append(f"{r['id']} {r['surface']}")
        files["text.meaning"].append(f"{r['id']} {r['meaning']}")
        files["utt2spk"].append(f"{r['id']} {r['speaker']}")
        files["utt2lang"].append(f"{r['id']} {r['language']}")
    files["wav.scp"] = [f"{k} {v}" for k, v in sorted(wav.items())]
    if segments:
        files["segments"] = segments
    l1 = [f"{r['id']} {r['l1']}" for r in rows if r["l1"]]
    if l1:
        files["utt2l1"] = l1
    # Every target is checked before any is written, so a refusal leaves no
    # half-exported directory behind.
    if d.exists() and not d.is_dir():
        raise ManifestError(f"{d}: is a file; expected a directory for the Kaldi data files")
    existing = [name for name in KALDI_FILES if (d / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{d}: holds {', '.join(existing)}; refusing to overwrite (pass --overwrite)")
    for name, lines in files.items():
        with _writing(d / name):
            atomic_write_text(d / name, "\n".join(lines) + "\n", overwrite)
    for name in set(existing) - set(files):
        # An optional file of the earlier export (segments, utt2l1) would be
        # read back with the new ones.
        (d / name).unlink()
