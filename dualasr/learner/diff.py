"""The aligned diff of what a learner said (surface) against what they meant
(meaning), per word and, inside each word, per unit.

Words are aligned meaning -> surface with rapidfuzz's Indel opcodes over word
lists (the longest common subsequence: as many identical words matched as
possible; unit-cost Levenshtein would as soon pair "very" with "good" as leave
"very" out). Between two matched words, the meaning and heard words of the
gap pair up in order and the surplus of either side stays unpaired:

- matched -> ErrorType ``None``;
- paired  -> ``Mispronunciation`` (the meaning word said as the surface word);
- unpaired meaning word -> ``Omission``: it was not said; its span has length
  0 at the end of the heard word before it (the start of the audio if none);
- unpaired heard word -> ``Insertion``: no meaning counterpart.

The units of a word pair are the output's tokenizer units
(:func:`dualasr.text.tokenizer.split_units`): characters for English, Hangul
syllables or conjoining jamo for Korean, ARPAbet phones for a phone output
(subwords are compared as characters). ``AccuracyScore`` is
``100 * (1 - d / max(len(expected), len(heard)))`` with ``d`` their unit
Levenshtein distance (rapidfuzz's normalised similarity), 0 for an omission or
an insertion.
"""

from __future__ import annotations

from dataclasses import dataclass

from rapidfuzz.distance import Indel, Levenshtein

from dualasr.text.tokenizer import SPACE, split_units

from .align import WordSpan

#: rapidfuzz's opcode tags -> the diff's unit operations.
UNIT_OPS = {"equal": "match", "replace": "substitution", "delete": "deletion", "insert": "insertion"}


@dataclass(frozen=True)
class UnitOp:
    """One unit operation inside a word: ``op`` (match, substitution,
    deletion, insertion), the expected unit(s) and the heard unit(s)."""

    op: str
    expected: str
    heard: str


@dataclass(frozen=True)
class WordDiff:
    """One word of the diff. ``start``/``end`` in seconds (the heard word's
    span; a zero-length point for an omission); ``confidence`` of the heard
    word (None for an omission)."""

    error_type: str
    expected: str
    heard: str
    start: float
    end: float
    accuracy: float
    confidence: float | None
    units: tuple[UnitOp, ...]


def units_of(word: str, unit: str) -> list[str]:
    """The units a word is compared in (see the module docstring)."""
    return [u for u in split_units(word, "char" if unit == "subword" else unit) if u != SPACE]


def diff_units(expected: str, heard: str, unit: str) -> tuple[UnitOp, ...]:
    """Unit operations turning ``expected`` into ``heard``; consecutive units
    of one operation are kept apart (one :class:`UnitOp` per unit pair)."""
    a, b = units_of(expected, unit), units_of(heard, unit)
    ops = []
    for op in Levenshtein.opcodes(a, b):
        ea, hb = a[op.src_start : op.src_end], b[op.dest_start : op.dest_end]
        if op.tag in ("equal", "replace"):
            ops += [UnitOp(UNIT_OPS[op.tag], x, y) for x, y in zip(ea, hb, strict=True)]
        else:
            ops += [UnitOp(UNIT_OPS[op.tag], x, "") for x in ea] + [UnitOp(UNIT_OPS[op.tag], "", y) for y in hb]
    return tuple(ops)


def accuracy(expected: str, heard: str, unit: str) -> float:
    """``AccuracyScore`` of a word pair, 0-100 (module docstring)."""
    return 100.0 * Levenshtein.normalized_similarity(units_of(expected, unit), units_of(heard, unit))


def diff_words(expected: list[str], heard: list[WordSpan], unit: str) -> list[WordDiff]:
    """The word diff of the meaning words ``expected`` against the timed
    surface words ``heard``, in spoken order; ``unit``: the tokenizer unit the
    words are compared in."""
    said = [w.text for w in heard]
    out: list[WordDiff] = []
    i = j = 0  # next meaning word, next heard word
    for op in [*Indel.opcodes(expected, said), None]:
        if op is not None and op.tag != "equal":
            continue  # a gap is handled at the equal block (or the end) that closes it
        gap_end = (op.src_start, op.dest_start) if op else (len(expected), len(said))
        gap_e, gap_h = expected[i : gap_end[0]], heard[j : gap_end[1]]
        for e, h in zip(gap_e, gap_h, strict=False):
            out.append(_pair("Mispronunciation", e, h, unit))
        for e in gap_e[len(gap_h) :]:
            at = out[-1].end if out else 0.0
            out.append(WordDiff("Omission", e, "", at, at, 0.0, None, diff_units(e, "", unit)))
        for h in gap_h[len(gap_e) :]:
            out.append(WordDiff("Insertion", "", h.text, h.start, h.end, 0.0, h.confidence, diff_units("", h.text, unit)))
        if op is not None:
            for e, h in zip(expected[op.src_start : op.src_end], heard[op.dest_start : op.dest_end], strict=True):
                out.append(_pair("None", e, h, unit))
            i, j = op.src_end, op.dest_end
    return out


def _pair(kind: str, expected: str, heard: WordSpan, unit: str) -> WordDiff:
    return WordDiff(kind, expected, heard.text, heard.start, heard.end, accuracy(expected, heard.text, unit),
                    heard.confidence, diff_units(expected, heard.text, unit))  # fmt: skip
