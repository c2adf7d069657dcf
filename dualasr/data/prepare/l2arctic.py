"""L2-ARCTIC v5.0 (non-native English read speech) with its manual phone annotation.

Layout (``corpus_dir``)::

    <SPK>/wav/arctic_a0001.wav               44.1 kHz mono, referenced in place
    <SPK>/transcript/arctic_a0001.txt        the prompt -> meaning
    <SPK>/annotation/arctic_a0001.TextGrid   manual annotation -> surface / canonical phones
    <SPK>/textgrid/arctic_a0001.TextGrid     forced alignment (not used)
    suitcase_corpus/{wav,transcript,annotation}/<spk>.{wav,txt,TextGrid}   (include_suitcase)

Each annotated utterance becomes one cut:

- ``meaning``: the prompt, normalised (``normalize(text, "en")``); the raw
  prompt is kept in ``custom["raw_text"]``.
- ``surface_phones`` / ``canonical_phones``: from the ``phones`` tier (grammar
  below), ARPAbet without stress digits.
- ``surface`` (text): the surface phones joined by spaces. L2-ARCTIC has no
  orthographic transcription of what was said, so the surface output of a
  phone-annotated corpus *is* its phone sequence; the ``phone`` tokenizer reads
  it as is, and divergence (``cut_divergence``) uses the phone lists.
- ``custom["phone_errors"]``: one record per annotated deviation, in order:
  ``{"index", "canonical", "perceived", "type", "distortion", "start", "end"}``
  with ``type`` ``s`` (substitution), ``d`` (deletion), ``a`` (insertion) or
  ``c`` (pronounced as canonical but marked distorted with ``*``); ``index`` is
  the position in ``canonical_phones`` (for an insertion, of the canonical
  phone it precedes); ``canonical``/``perceived`` are ``None`` for ``a``/``d``.
- ``l1`` from the speaker table; ``custom["annotation_comments"]``: non-empty
  labels of any tier other than ``words``/``phones``.

Phone-tier label grammar (``parse_phone_label``): ``AH0`` bare = pronounced as
canonical; ``CPL,PPL,s`` substitution; ``CPL,sil,d`` deletion; ``sil,PPL,a``
insertion; ``err`` as PPL = a wrong phone the annotator could not name, kept as
``ERR``; a ``*`` on a phone marks distortion (flag kept, mark stripped); empty,
``sil`` and ``sp`` are silence. Fields are stripped of spaces (``T, sil ,d``).
Odd labels are normalised by one rule: upper-case, then delete every character
that is not a letter, digit or ``*`` (``ER)`` -> ``ER``, ``AH)`` -> ``AH``,
`` V` `` -> ``V``, ``D_`` -> ``D``), then strip stress digits. Anything that is
still not one of the 39 ARPAbet phones (or ``ERR`` as PPL), or a ``d``/``a``/``s``
tag whose phones contradict its type, is an error naming file, interval and label.

Unannotated utterances (``include_unannotated=True``) are written to separate
manifests ``cuts_<split>_meaning_only.jsonl.gz`` with ``surface = meaning``,
no phone lists and ``custom["surface_available"] = False``. The separate file
is the guarantee that they never enter surface training or scoring by
accident (a consumer must ask for them), and ``surface = meaning`` keeps them
valid dualasr cuts; the flag tells a trainer to mask their surface loss.

Known broken annotations (YDCK arctic_a0209, arctic_a0272) are skipped with a
warning. A TextGrid praatio cannot read is a ``CorpusError`` naming the file.
Splits: the common 6-speaker MDD split by default (configurable). Every
speaker reads the same CMU ARCTIC prompts, so test prompts were read in
training (the regime of the reference study's corpora). ``unseen_prompts = f``
adds the other regime beside it: a fraction ``f`` of the prompts, chosen by a
stable hash of the prompt id (the same prompts on every machine), is held out
of training, and the test speakers' utterances go to two test splits,
``test_seen`` (prompts read in training) and ``test_unseen`` (held-out
prompts, and the suitcase recordings); train speakers' readings of held-out
prompts are left out and counted; dev keeps every prompt.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from praatio import textgrid

from dualasr.data.manifest import Utterance
from dualasr.data.prepare.common import (
    PHONES,
    UNKNOWN_PHONE,
    Collector,
    CorpusError,
    OptionError,
    PrepareReport,
)
from dualasr.text.normalize import normalize

L1_OF_SPEAKER: dict[str, str] = {
    **dict.fromkeys(("ABA", "SKA", "YBAA", "ZHAA"), "arabic"),
    **dict.fromkeys(("BWC", "LXC", "NCC", "TXHC"), "mandarin"),
    **dict.fromkeys(("ASI", "RRBI", "SVBI", "TNI"), "hindi"),
    **dict.fromkeys(("HJK", "HKK", "YDCK", "YKWK"), "korean"),
    **dict.fromkeys(("EBVS", "ERMS", "MBMPS", "NJS"), "spanish"),
    **dict.fromkeys(("HQTV", "PNV", "THV", "TLV"), "vietnamese"),
}
TEST_SPEAKERS: tuple[str, ...] = ("NJS", "TLV", "TNI", "TXHC", "YKWK", "ZHAA")
DEV_SPEAKERS: tuple[str, ...] = ("MBMPS", "THV", "SVBI", "NCC", "YDCK", "YBAA")
KNOWN_BROKEN: frozenset[tuple[str, str]] = frozenset(
    {("YDCK", "arctic_a0209"), ("YDCK", "arctic_a0272")}
)
SUITCASE_DIR = "suitcase_corpus"

_NOT_PHONE_CHAR = re.compile(r"[^A-Z0-9*]")
_SILENCE = ("", "SIL", "SP")


@dataclass(frozen=True)
class PhoneLabel:
    """One non-silent phone-tier interval: ``type`` is ``c`` (as canonical),
    ``s``, ``d`` or ``a``; ``canonical`` is None for ``a``, ``perceived`` for ``d``."""

    canonical: str | None
    perceived: str | None
    type: str
    distortion: bool


def _phone(field: str) -> tuple[str | None, bool]:
    """(phone or None for silence, distortion flag) of one label field."""
    cleaned = _NOT_PHONE_CHAR.sub("", field.upper())
    distortion = "*" in cleaned
    phone = cleaned.replace("*", "").rstrip("0123456789")
    if phone in _SILENCE:
        return None, distortion
    if phone not in PHONES:
        raise ValueError(f"unknown phone {field.strip()!r}")
    return phone, distortion


def parse_phone_label(label: str) -> PhoneLabel | None:
    """Parse one phone-tier label (grammar in the module docstring); None = silence.

    Raises ``ValueError`` saying what is wrong with the label.
    """
    fields = label.split(",")
    if len(fields) == 1:
        phone, distortion = _phone(fields[0])
        if phone is None:
            return None
        if phone == UNKNOWN_PHONE:
            raise ValueError("bare 'err' has no canonical phone")
        return PhoneLabel(phone, phone, "c", distortion)
    if len(fields) != 3:
        raise ValueError("expected a phone or 'CPL,PPL,type'")
    cpl, cpl_distortion = _phone(fields[0])
    ppl, ppl_distortion = _phone(fields[1])
    kind = re.sub(r"[^a-z]", "", fields[2].lower())
    expected = {"s": (True, True), "d": (True, False), "a": (False, True)}.get(kind)
    if expected is None:
        raise ValueError(f"unknown error type {fields[2].strip()!r} (expected s, d or a)")
    if (cpl is not None, ppl is not None) != expected:
        raise ValueError(
            f"type {kind!r} needs {'a phone' if expected[0] else 'sil'} as CPL and "
            f"{'a phone' if expected[1] else 'sil'} as PPL"
        )
    if cpl == UNKNOWN_PHONE:
        raise ValueError("'err' cannot be the canonical phone")
    return PhoneLabel(cpl, ppl, kind, cpl_distortion or ppl_distortion)


@dataclass
class Annotation:
    canonical: list[str]
    surface: list[str]
    errors: list[dict]
    comments: list[str]


def read_annotation(path: str | Path) -> Annotation:
    """Canonical and surface phones of one manual-annotation TextGrid.

    Raises ``CorpusError`` naming the file (and interval) when the TextGrid is
    unreadable, has no ``phones`` interval tier, or holds a bad label.
    """
    path = Path(path)
    try:
        tg = textgrid.openTextgrid(str(path), includeEmptyIntervals=False, reportingMode="silence")
    except Exception as e:  # praatio raises many types for one cause: not a TextGrid
        message = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise CorpusError(f"{path}: malformed TextGrid ({message})", "malformed TextGrid") from None
    tiers = {name.lower(): tg.getTier(name) for name in tg.tierNames}
    phones = tiers.get("phones")
    if phones is None or phones.tierType != textgrid.INTERVAL_TIER:
        raise CorpusError(
            f"{path}: no 'phones' interval tier (tiers: {', '.join(tg.tierNames)})",
            "malformed TextGrid",
        )
    ann = Annotation([], [], [], [])
    for number, (start, end, label) in enumerate(phones.entries, 1):
        try:
            parsed = parse_phone_label(label)
        except ValueError as e:
            raise CorpusError(
                f"{path}: phones interval {number} [{start:.3f}-{end:.3f} s] label {label!r}: {e}",
                "bad phone label",
            ) from None
        if parsed is None:
            continue
        if parsed.type != "c" or parsed.distortion:
            ann.errors.append(
                {
                    "index": len(ann.canonical),
                    "canonical": parsed.canonical,
                    "perceived": parsed.perceived,
                    "type": parsed.type,
                    "distortion": parsed.distortion,
                    "start": round(start, 4),
                    "end": round(end, 4),
                }
            )
        if parsed.canonical is not None:
            ann.canonical.append(parsed.canonical)
        if parsed.perceived is not None:
            ann.surface.append(parsed.perceived)
    for name, tier in tiers.items():
        if name not in ("words", "phones"):
            ann.comments += [e[-1].strip() for e in tier.entries if e[-1].strip()]
    return ann


def _read_prompt(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CorpusError(f"{path}: missing transcript", "missing transcript") from None
    except UnicodeDecodeError as e:
        raise CorpusError(
            f"{path}: not UTF-8 ({e.reason} at byte {e.start})", "undecodable text"
        ) from None
    return " ".join(text.split())


def _stems(directory: Path, suffix: str) -> set[str]:
    if not directory.is_dir():
        return set()
    return {e.name[: -len(suffix)] for e in os.scandir(directory) if e.name.endswith(suffix)}


@dataclass(frozen=True)
class _Item:
    speaker: str  # as in the corpus (upper case)
    utt_id: str
    wav: Path
    transcript: Path
    annotation: Path | None
    custom: dict


def _items(corpus_dir: Path, include_suitcase: bool) -> list[_Item]:
    items = []
    speakers = sorted(
        e.name
        for e in os.scandir(corpus_dir)
        if e.is_dir()
        and e.name != SUITCASE_DIR
        and any((corpus_dir / e.name / d).is_dir() for d in ("wav", "annotation"))
    )
    for spk in speakers:
        d = corpus_dir / spk
        annotated = _stems(d / "annotation", ".TextGrid")
        for stem in sorted(_stems(d / "wav", ".wav") | annotated):
            items.append(
                _Item(
                    spk,
                    f"{spk}_{stem}",
                    d / "wav" / f"{stem}.wav",
                    d / "transcript" / f"{stem}.txt",
                    d / "annotation" / f"{stem}.TextGrid" if stem in annotated else None,
                    {},
                )
            )
    if include_suitcase:
        d = corpus_dir / SUITCASE_DIR
        annotated = _stems(d / "annotation", ".TextGrid")
        for stem in sorted(_stems(d / "wav", ".wav") | annotated):
            spk = stem.upper()
            items.append(
                _Item(
                    spk,
                    f"{spk}_suitcase",
                    d / "wav" / f"{stem}.wav",
                    d / "transcript" / f"{stem}.txt",
                    d / "annotation" / f"{stem}.TextGrid" if stem in annotated else None,
                    {"subset": "suitcase"},
                )
            )
    return items


def _speaker_list(name: str, speakers: Sequence[str]) -> set[str]:
    if isinstance(speakers, str):
        raise OptionError(f"{name} must be a list of speaker ids, not the string {speakers!r}")
    return {s.upper() for s in speakers}


def held_out_prompt(prompt_id: str, fraction: float) -> bool:
    """Whether ``prompt_id`` (e.g. ``arctic_a0001``) is among the ``fraction`` of
    prompts held out of training: its SHA-256 read as a number in [0, 1) falls
    below ``fraction``, so the choice is stable across machines and runs."""
    h = int.from_bytes(hashlib.sha256(prompt_id.encode()).digest()[:8], "big")
    return h / 2**64 < fraction


def prepare_l2arctic(
    corpus_dir: str | Path,
    output_dir: str | Path,
    test_speakers: Sequence[str] = TEST_SPEAKERS,
    dev_speakers: Sequence[str] = DEV_SPEAKERS,
    include_unannotated: bool = False,
    include_suitcase: bool = False,
    unseen_prompts: float = 0.0,
    skip_invalid: bool = False,
    overwrite: bool = False,
) -> PrepareReport:
    """Prepare L2-ARCTIC into ``OUTPUT_DIR/cuts_{train,dev,test}.jsonl.gz``.

    Speakers in ``test_speakers`` go to test, ``dev_speakers`` to dev, all
    others to train. ``include_unannotated`` also writes the utterances without
    a manual annotation as meaning-only manifests; ``include_suitcase`` adds the
    spontaneous suitcase recordings (one long cut per speaker,
    ``custom["subset"] = "suitcase"``). ``unseen_prompts`` (a fraction in
    [0, 1)) holds prompts out of training and writes ``test_seen`` and
    ``test_unseen`` instead of ``test``. See the module docstring for the rules.
    """
    if not 0.0 <= unseen_prompts < 1.0:
        raise OptionError(f"unseen_prompts: expected a fraction in [0, 1), got {unseen_prompts}")
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise CorpusError(f"{corpus_dir}: not a directory", "missing corpus")
    test = _speaker_list("test_speakers", test_speakers)
    dev = _speaker_list("dev_speakers", dev_speakers)
    if test & dev:
        raise OptionError(
            f"speakers in both test_speakers and dev_speakers: {', '.join(sorted(test & dev))}"
        )
    splits = ("train", "dev") + (("test_seen", "test_unseen") if unseen_prompts else ("test",))
    manifests = splits + tuple(f"{s}_meaning_only" for s in splits) * include_unannotated
    out = Collector("l2arctic", output_dir, manifests, overwrite, skip_invalid)
    items = _items(corpus_dir, include_suitcase)
    if not items:
        raise CorpusError(
            f"{corpus_dir}: no <SPK>/wav or <SPK>/annotation directory found; "
            "is this the L2-ARCTIC root?",
            "missing corpus",
        )
    for spk in sorted({i.speaker.upper() for i in items} - set(L1_OF_SPEAKER)):
        out.warn(f"speaker {spk} is not in the L2-ARCTIC speaker table; its L1 is left empty")
    for item in items:
        spk = item.speaker.upper()
        split = "test" if spk in test else "dev" if spk in dev else "train"
        if unseen_prompts and split != "dev":
            suitcase = item.custom.get("subset") == "suitcase"
            held = not suitcase and held_out_prompt(item.wav.stem, unseen_prompts)
            if split == "train" and held:
                out.exclude(split, "prompt held out of training (unseen_prompts)")
                continue
            if split == "test":
                split = "test_unseen" if held or suitcase else "test_seen"
        if item.annotation is not None and (spk, item.wav.stem) in KNOWN_BROKEN:
            out.reject(
                split,
                item.utt_id,
                str(item.annotation),
                f"{item.annotation}: known broken annotation",
                "known broken annotation",
            )
            out.warn(f"{item.annotation}: known broken annotation in L2-ARCTIC v5.0, skipped")
            continue
        if item.annotation is None and not include_unannotated:
            out.exclude(split, "no manual annotation (include_unannotated=False)")
            continue
        manifest = split if item.annotation is not None else f"{split}_meaning_only"
        source = str(item.annotation or item.transcript)
        with out.item(manifest, item.utt_id, source):
            raw = _read_prompt(item.transcript)
            meaning = normalize(raw, "en")
            custom = {"corpus": "l2arctic", "raw_text": raw, **item.custom}
            if item.annotation is None:
                surface, surface_phones, canonical_phones = meaning, None, None
                custom["surface_available"] = False
            else:
                ann = read_annotation(item.annotation)
                surface_phones, canonical_phones = ann.surface, ann.canonical
                surface = " ".join(surface_phones)
                custom["phone_errors"] = ann.errors
                if ann.comments:
                    custom["annotation_comments"] = ann.comments
            out.add(
                manifest,
                source,
                Utterance(
                    id=item.utt_id,
                    audio=str(item.wav),
                    language="en",
                    speaker=item.speaker,
                    surface=surface,
                    meaning=meaning,
                    l1=L1_OF_SPEAKER.get(spk),
                    surface_phones=surface_phones,
                    canonical_phones=canonical_phones,
                    custom=custom,
                ),
            )
    return out.write()
