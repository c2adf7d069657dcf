"""Error rates per test speaker (what sclite's per-speaker report gives):
where a model fails, not only how much.

On the synthetic corpus a speaker is a held-out voice (a recorded speaker of
one engine, or an espeak-ng variant), on L2-ARCTIC or speechocean762 a
learner. Written by ``dualasr score`` as ``tables/cer_by_speaker.csv`` (one row
per test split, language, speaker, model, output and unit) and ``.md`` (per
test split and language, rows =
speakers, columns = model x output, baselines next to the models they are
compared with).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dualasr.atomic import atomic_write_text
from dualasr.layout import OUTPUTS, default_label
from dualasr.score.rates import OutputScores, corpus_rate, fmt_number, fmt_rate, mean_std
from dualasr.tables import Table, markdown

SPEAKER_COLUMNS = ("split", "language", "speaker", "model", "label", "output", "unit", "n", "n_seeds", "seeds", "cer", "cer_std")


@dataclass(frozen=True)
class SpeakerRow:
    """Corpus-level CER (%) of one output of one model over one speaker's ``n``
    utterances, mean and sample std over ``seeds``; a phone error rate where
    ``unit`` is "phone"; ``label``: how tables show the model."""

    language: str
    speaker: str
    model: str
    output: str
    unit: str
    n: int
    seeds: tuple[int, ...]
    cer: float
    cer_std: float
    label: str = ""
    split: str = "test"  # the test split scored

    def __post_init__(self):
        if not self.label:
            object.__setattr__(self, "label", default_label(self.model))


def speaker_rows(scores: Sequence[OutputScores]) -> list[SpeakerRow]:
    """One row per (test split, language, speaker, model, output, unit) of
    ``scores`` (every seed of every model run on every language and split),
    models in the order of ``scores``."""
    runs: dict[tuple[str, str, str, str], list[OutputScores]] = {}
    for s in scores:
        runs.setdefault((s.split, s.language, s.model, s.output), []).append(s)
    rows = []
    for (split, language, model, output), group in runs.items():
        group = sorted(group, key=lambda r: r.seed)
        speakers = np.array(group[0].refs.speakers)
        for speaker in sorted(set(speakers)):
            for unit in sorted(set(group[0].unit[speakers == speaker])):
                m = (speakers == speaker) & (group[0].unit == unit)
                cer = [corpus_rate(r.char_errors[m], r.ref_chars[m]) for r in group]
                rows.append(SpeakerRow(language, speaker, model, output, unit, int(m.sum()),
                                       tuple(r.seed for r in group), *mean_std(cer), group[0].label, split))  # fmt: skip
    # Stable: within a speaker, models keep the order of ``scores`` (baselines first).
    return sorted(rows, key=lambda r: (r.split, r.language, r.speaker))


def speakers_csv(rows: Sequence[SpeakerRow]) -> str:
    """``tables/cer_by_speaker.csv`` (:data:`SPEAKER_COLUMNS`)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SPEAKER_COLUMNS)
    for r in rows:
        w.writerow([r.split, r.language, r.speaker, r.model, r.label, r.output, r.unit, r.n, len(r.seeds), ";".join(map(str, r.seeds)),
                    fmt_number(r.cer), fmt_number(r.cer_std)])  # fmt: skip
    return buf.getvalue()


def speaker_row(cells: dict[str, str]) -> SpeakerRow:
    """A row of ``tables/cer_by_speaker.csv`` read back (empty rates are NaN)."""
    return SpeakerRow(
        cells["language"], cells["speaker"], cells["model"], cells["output"], cells["unit"], int(cells["n"]),
        tuple(int(x) for x in cells["seeds"].split(";") if x),
        float(cells["cer"] or "nan"), float(cells["cer_std"] or "nan"), cells["label"], cells["split"],
    )  # fmt: skip


def speaker_tables(rows: Sequence[SpeakerRow]) -> list[Table]:
    """One table per test split and language: rows = speakers, columns = output
    x model by label (each output's models in the rows' order: its baseline first)."""
    tables = []
    several = len({r.split for r in rows}) > 1
    for split, language in sorted({(r.split, r.language) for r in rows}):
        mine = [r for r in rows if (r.split, r.language) == (split, language)]
        models = list(dict.fromkeys(r.model for r in mine))
        columns = sorted({(r.output, r.model, r.unit) for r in mine},
                         key=lambda c: (OUTPUTS.index(c[0]), models.index(c[1]), c[2]))  # fmt: skip
        first = columns[0][:2]  # every model is scored on every utterance: count them once
        cell = {(r.speaker, r.output, r.model, r.unit): r for r in mine}
        labels = {r.model: r.label for r in mine}
        head = ["speaker", "utterances"] + [f"{labels[m]} {o}" + (" PER" if u == "phone" else "") for o, m, u in columns]
        table = Table(head, caption=f"{language}{f' {split}' if several else ''}: CER (%) per test speaker")
        for speaker in sorted({r.speaker for r in mine}):
            cells = [cell.get((speaker, *c)) for c in columns]
            n = sum(r.n for r in mine if r.speaker == speaker and (r.output, r.model) == first)
            table.add([speaker, str(n)] + [fmt_rate(r.cer, r.cer_std, r.n) if r else "—" for r in cells])
        tables.append(table)
    return tables


SPEAKERS_INTRO = (
    "Corpus-level CER over each speaker's test utterances (PER for phone-level "
    "references), mean ± sample std over seeds when there are several."
)


def speakers_markdown(rows: Sequence[SpeakerRow]) -> str:
    """``tables/cer_by_speaker.md``: :func:`speaker_tables`, one section per language."""
    lines = ["# Error rates (%) per test speaker", "", SPEAKERS_INTRO]
    for table in speaker_tables(rows):
        lines += ["", markdown(table)]
    return "\n".join(lines) + "\n"


def write_speaker_rates(rows: Sequence[SpeakerRow], out_dir: str | Path) -> list[Path]:
    """Write ``tables/cer_by_speaker.csv`` and ``.md`` under ``out_dir`` (overwriting)."""
    tables = Path(out_dir) / "tables"
    atomic_write_text(tables / "cer_by_speaker.csv", speakers_csv(rows), overwrite=True)
    atomic_write_text(tables / "cer_by_speaker.md", speakers_markdown(rows), overwrite=True)
    return [tables / "cer_by_speaker.csv", tables / "cer_by_speaker.md"]
