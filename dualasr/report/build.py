"""``dualasr report``: one page gathering a study's tables, figures and findings.

Reads the study directory (:mod:`dualasr.report.inputs` lists the files),
draws ``figures/training.png`` from the training logs, and writes atomically

- ``DIR/report.html``: one self-contained file (figures as base64 data URIs,
  inline CSS, no script, no external URL; a Content-Security-Policy forbids
  loading anything else);
- ``DIR/report.md``: the same content, figures linked by relative path.

Sections, in the data flow's order: corpus (Table 1), error rates (Table 2),
CER gap per ED bin (Figure 2), training curves, encoder and decoder CKA
(Tables 3 and 4), entanglement, and, when the study has dual-output variants
beyond the plain DO model, the method comparison (:mod:`dualasr.report.methods`,
which also writes ``tables/methods.csv|md`` and ``figures/method_gaps.png``). Each table is the one its stage writes to its
``.md``: the report reads the stage's rows (CSV) and builds the table with the
stage's own function (:mod:`dualasr.tables` renders both). The reference
study's number is shown beside ours wherever it reports the same cell
(:mod:`dualasr.reference`). A section whose inputs are missing says so in one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from dualasr.analysis.analyze import (
    CKA_COLUMNS,
    ENTANGLEMENT_COLUMNS,
    ENTANGLEMENT_INTRO,
    decoder_tables,
    encoder_tables,
    entanglement_table,
    intro,
)
from dualasr.atomic import atomic_write_text
from dualasr.data.stats import corpus_table, read_stats_csv
from dualasr.layout import EXP_DIR, discover_runs
from dualasr.reference import CITATION, REFERENCE_CORPUS, REFERENCE_ED_SHARES
from dualasr.report import findings as fnd
from dualasr.report.figures import plot_training
from dualasr.report.inputs import ReportError, read_cka, read_csv, read_training_runs
from dualasr.report.methods import METHODS_INTRO, method_rows, methods_table, write_methods
from dualasr.score.ed_gap import GAP_COLUMNS, GAPS_INTRO, gap_row, gap_table
from dualasr.score.rates import RATE_COLUMNS, RATES_INTRO, rate_row, rate_tables, read_notes
from dualasr.score.speakers import SPEAKER_COLUMNS, speaker_row, speaker_tables
from dualasr.tables import Table
from dualasr.text.divergence import ED_BIN_LABELS

# What to run when an input is missing.
RUN_HINT = {
    "tables/corpus.csv": "run the corpus stage: dualasr study --until corpus",
    "tables/cer.csv": "run the score stage: dualasr score DIR",
    "tables/ed_gap.csv": "run the score stage: dualasr score DIR",
    "tables/cka_encoder.csv": "run the analyze stage",
    "tables/cka_decoder.csv": "run the analyze stage",
    "tables/entanglement.csv": "run the analyze stage",
}


@dataclass
class Figure:
    """A PNG of the study directory: ``path`` relative to it."""

    path: str
    caption: str


@dataclass
class Section:
    """One part of the report. ``missing``: one line per input that is absent
    (a section with nothing else is just those lines)."""

    id: str
    title: str
    intro: str = ""
    findings: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


@dataclass
class Report:
    study_dir: Path
    sections: list[Section]
    html: Path
    markdown: Path


def _figure(
    study: Path, rel: str, caption: str, section: Section, table_missing: str | None = None
) -> None:
    """Add figure ``rel`` if it exists; else a missing line, merged with the
    section's table's (``table_missing``) so a stage not run is one line."""
    if (study / rel).is_file():
        section.figures.append(Figure(rel, caption))
        if table_missing:
            section.missing.append(f"{table_missing}: not found.")
    elif table_missing:
        section.missing.append(f"{table_missing} and {rel}: not found ({RUN_HINT[table_missing]}).")
    else:
        section.missing.append(f"{rel}: not found; the figure is left out.")


# ---------------------------------------------------------------------- sections


def corpus_section(study: Path) -> Section:
    s = Section("corpus", "Corpus (Table 1)")
    path = study / "tables" / "corpus.csv"
    if not path.is_file():
        s.missing.append(f"tables/corpus.csv: not found ({RUN_HINT['tables/corpus.csv']}).")
        return s
    stats = read_stats_csv(path)
    s.intro = (
        "Utterances and hours per split, and the share of utterances per surface-meaning "
        f"divergence (ED) bin. Reference rows: {CITATION}, Table 1 (AI-Hub L2 read speech; its val = our dev)."
    )
    ours = corpus_table(stats)
    table = Table(ours.head, caption="Corpus statistics")
    for row in ours.rows:
        table.rows.append(row)
        lang = row.cells[0].text
        if lang in REFERENCE_CORPUS or lang in REFERENCE_ED_SHARES:
            ref = []
            for h in ours.head:
                key = h.removeprefix("ED ")
                if h == "language":
                    ref.append(f"{lang} (reference study)")
                elif h in REFERENCE_CORPUS.get(lang, {}):
                    ref.append(f"{REFERENCE_CORPUS[lang][h]:,}")
                elif h.startswith("ED ") and key in ED_BIN_LABELS and lang in REFERENCE_ED_SHARES:
                    ref.append(f"{100 * REFERENCE_ED_SHARES[lang][ED_BIN_LABELS.index(key)]:.1f} %")
                else:
                    ref.append("")
            table.add(ref, reference=True)
    s.tables.append(table)
    s.findings = fnd.corpus_findings(stats)
    return s


def cer_section(study: Path) -> Section:
    s = Section("cer", "Error rates (Table 2)")
    rows = read_csv(study / "tables" / "cer.csv", RATE_COLUMNS)
    if rows is None:
        s.missing.append(f"tables/cer.csv: not found ({RUN_HINT['tables/cer.csv']}).")
        return s
    s.intro = RATES_INTRO
    s.tables.append(rate_tables([rate_row(r) for r in rows])[0])
    by_speaker = read_csv(study / "tables" / "cer_by_speaker.csv", SPEAKER_COLUMNS)
    if by_speaker is None:
        s.missing.append(f"tables/cer_by_speaker.csv: not found ({RUN_HINT['tables/cer.csv']}).")
    else:
        s.tables += speaker_tables([speaker_row(r) for r in by_speaker])
    s.findings = fnd.cer_findings(rows)
    s.notes = read_notes(study / "tables" / "cer.md") + decoding_notes(study)
    return s


def decoding_notes(study: Path) -> list[str]:
    """One line per distinct decoding set-up of the test sets (``decode_<split>.json``
    of every model and test split), naming the LM fusion: the reference study's numbers come
    without an external LM, so a reader must know whether ours use one."""
    setups: dict[str, list[str]] = {}
    runs = discover_runs(study / EXP_DIR) if (study / EXP_DIR).is_dir() else []
    for path in (r.dir / f"decode_{split}.json" for r in runs for split in r.decoded_splits()):
        if not path.is_file():  # decoded before dualasr recorded its settings
            continue
        info = json.loads(path.read_text(encoding="utf-8"))
        fused = {o: w for o, w in sorted(info.get("lm_weight", {}).items()) if o in info.get("lms", {})}
        lm = ", ".join(f"{o} LM at weight {w:g}" for o, w in fused.items()) or "no language model"
        setup = f"beam {info['beam']}, CTC weight {info['ctc_weight']:g} (outputs with a CTC head), {lm}"
        run = "/".join(path.parent.relative_to(study / "exp").parts)
        if run not in setups.get(setup, []):
            setups.setdefault(setup, []).append(run)
    return [f"Test decoding of {', '.join(runs)}: {setup}." for setup, runs in setups.items()]


def gap_section(study: Path) -> Section:
    s = Section("ed-gap", "CER gap DO − SO by divergence (Figure 2)")
    rows = read_csv(study / "tables" / "ed_gap.csv", GAP_COLUMNS)
    if rows is not None:
        s.intro = GAPS_INTRO
        s.tables.append(gap_table([gap_row(r) for r in rows]))
        s.findings = fnd.gap_findings(rows)
        s.notes = read_notes(study / "tables" / "ed_gap.md")
    _figure(study, "figures/ed_gap.png", "CER gap DO − SO per ED bin with 95 % CIs, and the reference study's gaps.", s,
            table_missing=None if rows is not None else "tables/ed_gap.csv")  # fmt: skip
    return s


def training_section(study: Path) -> Section:
    s = Section("training", "Training curves")
    runs = [r for r in read_training_runs(study / "exp") if r.rows]
    if not runs:
        s.missing.append(
            "exp/<lang>/<name>/seed<k>/metrics.csv: not found (run the training stage)."
        )
        return s
    s.intro = f"Loss per epoch of the {len(runs)} trained run(s): train (solid) and dev (dashed)."
    plot_training(runs, study / "figures" / "training.png")
    s.figures.append(
        Figure(
            "figures/training.png", "Train and dev loss per epoch, per language, model and seed."
        )
    )
    s.findings = fnd.training_findings(runs)
    return s


def cka_section(study: Path, part: str, table_no: int) -> Section:
    s = Section(f"cka-{part}", f"{part.capitalize()} CKA (Table {table_no})")
    rows = read_cka(study / "tables" / f"cka_{part}.csv", CKA_COLUMNS)
    if rows is not None:
        for r in rows:
            r["kind"] = part  # one file per kind: the stage's table functions select by it
        s.intro = intro(part, rows)
        s.tables += encoder_tables(rows) if part == "encoder" else decoder_tables(rows)
        if not s.tables:
            s.missing.append(f"tables/cka_{part}.csv: no rows.")
        s.findings = fnd.cka_findings(rows, part)
        s.notes = read_notes(study / "tables" / f"cka_{part}.md")
    _figure(study, f"figures/cka_{part}.png", f"{part.capitalize()} CKA between models, layer by layer.", s,
            table_missing=None if rows is not None else f"tables/cka_{part}.csv")  # fmt: skip
    return s


def entanglement_section(study: Path) -> Section:
    s = Section("entanglement", "Entanglement")
    rows = read_cka(study / "tables" / "entanglement.csv", ENTANGLEMENT_COLUMNS)
    if rows is None:
        s.missing.append(f"tables/entanglement.csv: not found ({RUN_HINT['tables/entanglement.csv']}).")
    elif not rows:
        s.missing.append("tables/entanglement.csv: no rows.")
    else:
        s.intro = ENTANGLEMENT_INTRO
        s.tables.append(entanglement_table(rows))
    return s


def methods_section(study: Path) -> Section | None:
    """The method comparison, or None when the study has no dual-output variant
    beyond the plain DO model (or was not scored)."""
    rows = method_rows(study)
    if rows is None:
        return None
    s = Section("methods", "Methods against negative transfer", intro=METHODS_INTRO)
    write_methods(rows, study)
    s.tables.append(methods_table(rows))
    s.figures.append(Figure("figures/method_gaps.png", "CER gap model − SO per ED bin, one line per dual-output "
                            "model, its 95 % CI as a band; below 0: better than the SO model."))  # fmt: skip
    s.findings = fnd.method_findings(rows)
    if not (study / "tables" / "entanglement.csv").is_file():
        s.missing.append(f"tables/entanglement.csv: not found ({RUN_HINT['tables/entanglement.csv']}); E is left empty.")
    return s


# ---------------------------------------------------------------------- the report


def build_report(study_dir: str | Path) -> Report:
    """Write ``DIR/report.html`` and ``DIR/report.md`` (overwriting) from what the
    study directory holds, and draw ``DIR/figures/training.png``. Returns the
    sections and the two paths."""
    from dualasr.report.render import render_html, render_markdown

    study = Path(study_dir)
    if not study.is_dir():
        raise ReportError(f"{study}: not a study directory")
    sections = [
        corpus_section(study),
        cer_section(study),
        gap_section(study),
        training_section(study),
        cka_section(study, "encoder", 3),
        cka_section(study, "decoder", 4),
        entanglement_section(study),
    ]
    if (methods := methods_section(study)) is not None:
        sections.append(methods)
    report = Report(study, sections, study / "report.html", study / "report.md")
    atomic_write_text(report.markdown, render_markdown(report), overwrite=True)
    atomic_write_text(report.html, render_html(report), overwrite=True)
    return report
