"""Mispronunciation detection and diagnosis (MDD) scoring, without Kaldi.

Inputs per utterance: the canonical phones (what the prompt should sound
like), the human-perceived phones (the annotation) and the recognised phones
(the model's surface output). Phones are compared after ``normalize_phones``
(upper case, stress digits stripped).

Alignment: the perceived and the recognised sequences are each aligned to the
canonical sequence with rapidfuzz's Levenshtein ``editops`` (unit costs; one
optimal alignment, like Kaldi's ``align-text``). Aligning both to the canonical
sequence makes the system's decision for a canonical phone depend only on its
own output, never on the human labels. Each canonical phone ``c`` then has a
perceived phone ``p`` and a recognised phone ``r`` (either may be absent:
deleted), and is counted as (Li et al., 2016, TASLP; the hierarchy used by
every L2-ARCTIC MDD paper)::

    p == c, r == c  -> TA  true acceptance
    p == c, r != c  -> FR  false rejection
    p != c, r == c  -> FA  false acceptance
    p != c, r != c  -> TR  true rejection: CD (correct diagnosis) if r == p, else DE

Insertions: a phone the speaker inserted (perceived, aligned to no canonical
phone) is a mispronunciation unit too, as in the L2-ARCTIC scoring script
published with Fu et al. (2021, arXiv 2104.08428; ``ins_del_sub_cor_analysis.py``):
the perceived and recognised insertions at the same place (between the same
two canonical phones) are aligned to each other; a perceived insertion matched
by the same recognised phone is CD, by another phone DE, by none FA. A
recognised insertion where the speaker inserted nothing is not counted (that
script's convention) unless ``count_recognised_insertions=True``, which counts
it as FR. Insertion units are reported under the phone ``<ins>``.

Metrics (same script): precision = TR / (TR + FR), recall = TR / (TR + FA),
F1 = 2PR / (P + R), diagnosis error rate DER = DE / (CD + DE), false
rejection rate FRR = FR / (TA + FR), false acceptance rate FAR = FA / (FA + TR).
An undefined ratio (zero denominator) is NaN, shown as ``-`` in tables.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rapidfuzz.distance import Levenshtein

from dualasr.atomic import atomic_write_text
from dualasr.text.normalize import normalize_phones

INSERTION = "<ins>"
OUTCOMES = ("TA", "FR", "FA", "CD", "DE")
Breakdown = Literal["overall", "phone", "l1", "utterance"]
Phones = str | Sequence[str]


@dataclass(frozen=True)
class MDDUnit:
    """One scored unit: a canonical phone, or an insertion (``canonical`` None).
    ``perceived``/``recognised`` None = nothing there (deleted / not recognised)."""

    canonical: str | None
    perceived: str | None
    recognised: str | None
    outcome: str  # one of OUTCOMES


def _project(reference: list[str], other: list[str]) -> tuple[list[str | None], list[list[str]]]:
    """Align ``other`` to ``reference``: (phone of ``other`` at each reference
    position, None if deleted; phones of ``other`` inserted before position i,
    for i in 0..len(reference))."""
    at: list[str | None] = [None] * len(reference)
    inserted: list[list[str]] = [[] for _ in range(len(reference) + 1)]
    i = j = 0
    for tag, src, dest in Levenshtein.editops(reference, other).as_list():
        while i < src:  # an equal run up to this edit
            at[i] = other[j]
            i, j = i + 1, j + 1
        if tag == "replace":
            at[i] = other[dest]
            i, j = i + 1, j + 1
        elif tag == "delete":
            i += 1
        else:  # insert
            inserted[i].append(other[dest])
            j += 1
    while i < len(reference):
        at[i] = other[j]
        i, j = i + 1, j + 1
    return at, inserted


def _insertion_units(
    perceived: list[str], recognised: list[str], count_recognised: bool
) -> list[MDDUnit]:
    at, extra = _project(perceived, recognised)
    units = []
    for k in range(len(perceived) + 1):
        if count_recognised:
            units += [MDDUnit(None, None, r, "FR") for r in extra[k]]
        if k < len(perceived):
            p, r = perceived[k], at[k]
            units.append(MDDUnit(None, p, r, "FA" if r is None else "CD" if r == p else "DE"))
    return units


def align_mdd(
    canonical: Phones,
    perceived: Phones,
    recognised: Phones,
    count_recognised_insertions: bool = False,
) -> list[MDDUnit]:
    """The scored units of one utterance, in canonical order (rules in the module docstring).

    Sequences are lists of phones or space-separated strings.
    """
    can, per, rec = (normalize_phones(x) for x in (canonical, perceived, recognised))
    p_at, p_ins = _project(can, per)
    r_at, r_ins = _project(can, rec)
    units: list[MDDUnit] = []
    for i in range(len(can) + 1):
        if p_ins[i] or (count_recognised_insertions and r_ins[i]):
            units += _insertion_units(p_ins[i], r_ins[i], count_recognised_insertions)
        if i == len(can):
            break
        c, p, r = can[i], p_at[i], r_at[i]
        if p == c:
            outcome = "TA" if r == c else "FR"
        elif r == c:
            outcome = "FA"
        else:
            outcome = "CD" if r == p else "DE"
        units.append(MDDUnit(c, p, r, outcome))
    return units


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


@dataclass
class MDDCounts:
    """TA/FR/FA/CD/DE counts (TR = CD + DE) and the metrics derived from them."""

    ta: int = 0
    fr: int = 0
    fa: int = 0
    cd: int = 0
    de: int = 0

    def add(self, outcome: str) -> None:
        name = outcome.lower()
        setattr(self, name, getattr(self, name) + 1)

    @property
    def tr(self) -> int:
        return self.cd + self.de

    @property
    def precision(self) -> float:
        return _ratio(self.tr, self.tr + self.fr)

    @property
    def recall(self) -> float:
        return _ratio(self.tr, self.tr + self.fa)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else math.nan

    @property
    def der(self) -> float:
        return _ratio(self.de, self.tr)

    @property
    def frr(self) -> float:
        return _ratio(self.fr, self.ta + self.fr)

    @property
    def far(self) -> float:
        return _ratio(self.fa, self.fa + self.tr)

    def row(self) -> dict:
        return {
            "TA": self.ta,
            "FR": self.fr,
            "FA": self.fa,
            "TR": self.tr,
            "CD": self.cd,
            "DE": self.de,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "der": self.der,
            "frr": self.frr,
            "far": self.far,
        }


COLUMNS = ("TA", "FR", "FA", "TR", "CD", "DE", "precision", "recall", "f1", "der", "frr", "far")
_PERCENT = ("precision", "recall", "f1", "der", "frr", "far")


@dataclass
class MDDResult:
    """MDD counts overall and broken down by canonical phone, L1 and utterance."""

    overall: MDDCounts = field(default_factory=MDDCounts)
    by_phone: dict[str, MDDCounts] = field(default_factory=dict)
    by_l1: dict[str, MDDCounts] = field(default_factory=dict)
    by_utterance: dict[str, MDDCounts] = field(default_factory=dict)

    def rows(self, by: Breakdown = "overall") -> list[dict]:
        """Table rows: the group (``all``, a phone, an L1 or an utterance id) then :data:`COLUMNS`."""
        if by == "overall":
            groups = {"all": self.overall}
        else:
            groups = {"phone": self.by_phone, "l1": self.by_l1, "utterance": self.by_utterance}.get(
                by
            )
            if groups is None:
                raise ValueError(
                    f"unknown breakdown {by!r}; expected overall, phone, l1 or utterance"
                )
        order = sorted(groups, key=lambda k: (k == INSERTION, k))
        return [{"group": k, **groups[k].row()} for k in order]

    def to_csv(self, path: str | Path, by: Breakdown = "phone", overwrite: bool = False) -> None:
        """Write :meth:`rows` as CSV (ratios as fractions, NaN empty), atomically."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=("group",) + COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows(by):
            writer.writerow(
                {k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
            )
        atomic_write_text(path, buf.getvalue(), overwrite)

    def to_markdown(self, by: Breakdown = "overall") -> str:
        """A markdown table of :meth:`rows`, ratios in percent with one decimal."""
        header = [by if by != "overall" else "", *COLUMNS]
        lines = [
            "| " + " | ".join(h if h not in _PERCENT else f"{h} %" for h in header) + " |",
            "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
        ]
        for row in self.rows(by):
            cells = [str(row["group"])]
            for k in COLUMNS:
                v = row[k]
                cells.append(
                    ("-" if math.isnan(v) else f"{100 * v:.1f}") if k in _PERCENT else str(v)
                )
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def score_mdd(
    items: Iterable[tuple[str, Phones, Phones, Phones, str | None]],
    count_recognised_insertions: bool = False,
) -> MDDResult:
    """Score ``(utt_id, canonical, perceived, recognised, l1)`` items (L1 None ->
    ``unknown``). Raises ``ValueError`` on a repeated utterance id."""
    result = MDDResult()
    for utt_id, canonical, perceived, recognised, l1 in items:
        if utt_id in result.by_utterance:
            raise ValueError(f"utterance {utt_id!r} scored twice")
        utt = result.by_utterance[utt_id] = MDDCounts()
        lang = result.by_l1.setdefault(l1 or "unknown", MDDCounts())
        for unit in align_mdd(canonical, perceived, recognised, count_recognised_insertions):
            phone = unit.canonical if unit.canonical is not None else INSERTION
            for counts in (
                result.overall,
                utt,
                lang,
                result.by_phone.setdefault(phone, MDDCounts()),
            ):
                counts.add(unit.outcome)
    return result


def score_decoded(manifest: str | Path, hyps: str | Path, count_recognised_insertions: bool = False) -> MDDResult:
    """MDD of a decoded test set: canonical and human-perceived phones from the
    manifest (``canonical_phones``, ``surface_phones``), recognised phones from
    the decoder's surface output in ``hyps`` (``dualasr decode`` JSONL)."""
    from dualasr.data.manifest import load_manifest, supervision
    from dualasr.score.rates import ScoreError, check_ids, load_references, read_hypotheses

    hyp = read_hypotheses(hyps)
    by_language = load_references(manifest)
    if len(by_language) != 1:
        raise ScoreError(f"{manifest}: MDD needs a one-language test set, found {sorted(by_language)}")
    check_ids(hyp, next(iter(by_language.values())), hyps)  # every test id once, nothing else
    items = []
    for cut in load_manifest(manifest, check_audio=False):
        custom = supervision(cut).custom or {}
        if custom.get("canonical_phones") is None or custom.get("surface_phones") is None:
            raise ScoreError(f"{manifest}: cut {cut.id} has no canonical/surface phones; MDD needs a phone-annotated corpus")
        recognised = hyp[cut.id]["surface"]
        if recognised is None:
            raise ScoreError(f"{hyps}: no surface output; MDD scores the surface (phone) decoder")
        items.append((cut.id, custom["canonical_phones"], custom["surface_phones"], recognised.split(), custom.get("l1")))
    return score_mdd(items, count_recognised_insertions)


def score_study_mdd(
    hyps_dir: str | Path, manifests: dict[str, dict[str, str | Path]], tables_dir: str | Path
) -> list[Path]:
    """MDD of every surface-producing run under ``hyps_dir`` on every test split
    (``manifests[lang][split]``) that is phone-annotated:
    ``tables_dir/mdd_<lang>_<model>_seed<k>.{csv,md}`` for the split ``test``,
    ``mdd_<split>_<lang>_<model>_seed<k>`` for any other (CSV by canonical
    phone; markdown overall, by L1 and by phone)."""
    from dualasr.atomic import atomic_write_text
    from dualasr.data.manifest import load_manifest, supervision
    from dualasr.score.study import decoded_runs

    written = []
    for lang, by_split in manifests.items():
        for split, manifest in by_split.items():
            first = next(iter(load_manifest(manifest, check_audio=False)), None)
            if first is None or (supervision(first).custom or {}).get("canonical_phones") is None:
                continue
            for run in decoded_runs(hyps_dir, split):
                info = run.info
                if info.language != lang or "surface" not in info.outputs:
                    continue  # MDD needs phone annotation and a surface (phone) output
                result = score_decoded(manifest, run.hyps(split))
                prefix = "mdd" if split == "test" else f"mdd_{split}"
                stem = Path(tables_dir) / f"{prefix}_{info.language}_{info.name}_seed{info.seed}"
                result.to_csv(stem.with_suffix(".csv"), by="phone", overwrite=True)
                text = "".join(f"## {by}\n\n{result.to_markdown(by)}\n" for by in ("overall", "l1", "phone"))
                atomic_write_text(stem.with_suffix(".md"), text, overwrite=True)
                written += [stem.with_suffix(".csv"), stem.with_suffix(".md")]
    return written
