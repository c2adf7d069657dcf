"""The aligned diff of what a learner said (surface) against what they meant
(meaning), per word and, inside each word, per unit.

Words are aligned with rapidfuzz's Levenshtein opcodes over word lists
(unit costs, so a changed word is one substitution rather than a deletion and
an insertion), meaning -> surface:

- ``equal``   -> ErrorType ``None``;
- ``replace`` -> ``Mispronunciation`` (the meaning word said as the surface word);
- ``delete``  -> ``Omission``: the meaning word was not said; its span has
  length 0 at the end of the heard word before it (the start of the audio if none);
- ``insert``  -> ``Insertion``: a heard word with no meaning counterpart.

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

from rapidfuzz.distance import Levenshtein

from dualasr.text.tokenizer import SPACE, split_units

from .align import WordSpan

#: rapidfuzz's opcode tags -> the diff's word error types and unit operations.
ERROR_TYPES = {"equal": "None", "replace": "Mispronunciation", "delete": "Omission", "insert": "Insertion"}
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
    for op in Levenshtein.opcodes(expected, said):
        kind = ERROR_TYPES[op.tag]
        if op.tag in ("equal", "replace"):
            for e, h in zip(expected[op.src_start : op.src_end], heard[op.dest_start : op.dest_end], strict=True):
                out.append(WordDiff(kind, e, h.text, h.start, h.end, accuracy(e, h.text, unit), h.confidence,
                                    diff_units(e, h.text, unit)))  # fmt: skip
        elif op.tag == "delete":
            at = heard[op.dest_start - 1].end if op.dest_start > 0 else 0.0
            for e in expected[op.src_start : op.src_end]:
                out.append(WordDiff(kind, e, "", at, at, 0.0, None, diff_units(e, "", unit)))
        else:
            for h in heard[op.dest_start : op.dest_end]:
                out.append(WordDiff(kind, "", h.text, h.start, h.end, 0.0, h.confidence, diff_units("", h.text, unit)))
    return out
