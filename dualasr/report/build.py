"""``dualasr report``: one page gathering a study's tables, figures and findings.

Reads the study directory (:mod:`dualasr.report.inputs` lists the files),
draws ``figures/training.png`` from the training logs, and writes atomically

- ``DIR/report.html``: one self-contained file (figures as base64 data URIs,
  inline CSS, no script, no external URL; a Content-Security-Policy forbids
  loading anything else);
- ``DIR/report.md``: the same content, figures linked by relative path.

Sections, in the data flow's order: corpus (Table 1), error rates (Table 2),
CER gap per ED bin (Figure 2), training curves, encoder and decoder CKA
(Tables 3 and 4), entanglement. The reference study's number is shown beside
ours wherever it reports the same cell (:mod:`dualasr.report.reference`). A
section whose inputs are missing says so in one line.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dualasr.atomic import atomic_write_text
from dualasr.report import findings as fnd
from dualasr.report.figures import plot_training
from dualasr.report.inputs import (
    ReportError,
    Row,
    cka_diagonal,
    number,
    read_csv,
    read_markdown_table,
    read_training_runs,
)
from dualasr.report.reference import (
    CITATION,
    REFERENCE_CER,
    REFERENCE_CKA_DECODER,
    REFERENCE_CKA_ENCODER,
    REFERENCE_CORPUS,
    REFERENCE_ED_SHARES,
    REFERENCE_GAP,
)
from dualasr.score.errors import OUTPUTS, fmt_rate, mean_std, model_order
from dualasr.score.speakers import SPEAKER_COLUMNS, speaker_row, speaker_tables
from dualasr.score.study import discover_hypotheses
from dualasr.text.divergence import ED_BIN_LABELS

MAX_ROWS = 200  # rows of a generic table (entanglement) shown; the CSV has them all

# What to run when an input is missing.
RUN_HINT = {
    "tables/corpus.md": "run the corpus stage: dualasr study --until corpus",
    "tables/cer.csv": "run the score stage: dualasr score DIR",
    "tables/ed_gap.csv": "run the score stage: dualasr score DIR",
    "tables/cka_encoder.csv": "run the analyze stage",
    "tables/cka_decoder.csv": "run the analyze stage",
    "tables/entanglement.csv": "run the analyze stage",
}


@dataclass(frozen=True)
class Cell:
    """A table cell; ``strong`` marks a notable value (a CI excluding 0)."""

    text: str
    strong: bool = False


@dataclass
class Table:
    """``labels``: how many leading columns are labels (left-aligned), not numbers."""

    caption: str
    head: list[str]
    rows: list[list[Cell]]
    labels: int = 1


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


def _cells(values: Sequence[str]) -> list[Cell]:
    return [Cell(v) for v in values]


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


def _notes(study: Path, rel: str) -> list[str]:
    """The "## Notes" list of a markdown table written by the score stage."""
    path = study / rel
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    _, sep, notes = text.partition("\n## Notes\n")
    return [ln[2:].strip() for ln in notes.splitlines() if ln.startswith("- ")] if sep else []


# ---------------------------------------------------------------------- sections


def corpus_section(study: Path) -> Section:
    s = Section("corpus", "Corpus (Table 1)")
    table = read_markdown_table(study / "tables" / "corpus.md")
    if table is None:
        s.missing.append(f"tables/corpus.md: not found ({RUN_HINT['tables/corpus.md']}).")
        return s
    head, body = table
    s.intro = (
        "Utterances and hours per split, and the share of utterances per surface-meaning "
        f"divergence (ED) bin. Reference rows: {CITATION}, Table 1 (AI-Hub L2 read speech; its val = our dev)."
    )
    rows = []
    for row in body:
        rows.append(_cells(row))
        lang = row[0] if row else ""
        if lang in REFERENCE_CORPUS or lang in REFERENCE_ED_SHARES:
            ref = []
            for h in head:
                key = h.removeprefix("ED ")
                if h == "language":
                    ref.append(f"{lang} (reference study)")
                elif h in REFERENCE_CORPUS.get(lang, {}):
                    ref.append(f"{REFERENCE_CORPUS[lang][h]:,}")
                elif h.startswith("ED ") and key in ED_BIN_LABELS and lang in REFERENCE_ED_SHARES:
                    ref.append(f"{100 * REFERENCE_ED_SHARES[lang][ED_BIN_LABELS.index(key)]:.1f} %")
                else:
                    ref.append("")
            rows.append(_cells(ref))
    s.tables.append(Table("Corpus statistics", head, rows))
    s.findings = fnd.corpus_findings(head, body)
    return s


def cer_section(study: Path) -> Section:
    s = Section("cer", "Error rates (Table 2)")
    rows = read_csv(study / "tables" / "cer.csv", ("language", "model", "output", "unit", "cer"))
    if rows is None:
        s.missing.append(f"tables/cer.csv: not found ({RUN_HINT['tables/cer.csv']}).")
        return s
    s.intro = (
        "Test-set CER (%), corpus-level, mean ± std over seeds; PER for phone-annotated surfaces. "
        f"ref.: {CITATION}, Table 2 (Conformer SO = SSO surface / MSO meaning; Conformer DO). "
        "— = the model has no such output."
    )
    columns = sorted({(r["language"], r["output"], r["unit"]) for r in rows},
                     key=lambda c: (c[0], OUTPUTS.index(c[1]) if c[1] in OUTPUTS else 2, c[2]))  # fmt: skip
    cell = {(r["model"], r["language"], r["output"], r["unit"]): r for r in rows}
    head = ["model"]
    for lang, output, unit in columns:
        head += [f"{lang} {output} {'PER' if unit == 'phone' else 'CER'}", "ref."]
    body = []
    for model in model_order(r["model"] for r in rows):
        line = [Cell(fnd.model_name(model))]
        for lang, output, unit in columns:
            r = cell.get((model, lang, output, unit))
            line.append(
                Cell(
                    fmt_rate(number(r["cer"]), number(r.get("cer_std")), 1)
                    if r and number(r.get("n", "1"))
                    else "—"
                )
            )
            ref = REFERENCE_CER.get((lang, model, output)) if unit == "char" else None
            line.append(Cell(f"{ref:.2f}" if ref is not None else ""))
        body.append(line)
    s.tables.append(Table("CER (%) per model and output", head, body))
    by_speaker = read_csv(study / "tables" / "cer_by_speaker.csv", SPEAKER_COLUMNS)
    if by_speaker is None:
        s.missing.append(f"tables/cer_by_speaker.csv: not found ({RUN_HINT['tables/cer.csv']}).")
    else:
        for lang, (head, body) in speaker_tables([speaker_row(r) for r in by_speaker]).items():
            s.tables.append(Table(f"{lang}: CER (%) per test speaker", head, [_cells(r) for r in body]))
    s.findings = fnd.cer_findings(rows)
    s.notes = _notes(study, "tables/cer.md") + decoding_notes(study)
    return s


def decoding_notes(study: Path) -> list[str]:
    """One line per distinct decoding set-up of the test sets (``decode_test.json``
    of every model), naming the LM fusion: the reference study's numbers come
    without an external LM, so a reader must know whether ours use one."""
    setups: dict[str, list[str]] = {}
    runs = discover_hypotheses(study / "exp") if (study / "exp").is_dir() else []
    for path in (h.path.parent / "decode_test.json" for h in runs):
        if not path.is_file():  # decoded before dualasr recorded its settings
            continue
        info = json.loads(path.read_text(encoding="utf-8"))
        fused = {o: w for o, w in sorted(info.get("lm_weight", {}).items()) if o in info.get("lms", {})}
        lm = ", ".join(f"{o} LM at weight {w:g}" for o, w in fused.items()) or "no language model"
        setup = f"beam {info['beam']}, CTC weight {info['ctc_weight']:g} (outputs with a CTC head), {lm}"
        setups.setdefault(setup, []).append("/".join(path.parent.relative_to(study / "exp").parts))
    return [f"Test decoding of {', '.join(runs)}: {setup}." for setup, runs in setups.items()]


def _gap_cell(r: Row) -> Cell:
    if not number(r.get("n")) > 0 or math.isnan(number(r.get("gap"))):
        return Cell("— (n=0)")
    low, high = number(r.get("ci_low")), number(r.get("ci_high"))
    ci = "" if math.isnan(low) else f" [{fnd.signed(low)}, {fnd.signed(high)}]"
    excludes = not math.isnan(low) and (low > 0 or high < 0) and not fnd.ci_degenerate(r)
    return Cell(f"{fnd.signed(number(r['gap']))}{ci} (n={r['n']})", strong=excludes)


def gap_section(study: Path) -> Section:
    s = Section("ed-gap", "CER gap DO − SO by divergence (Figure 2)")
    need = (
        "language",
        "output",
        "unit",
        "model",
        "baseline",
        "ed_bin",
        "n",
        "gap",
        "ci_low",
        "ci_high",
    )
    rows = read_csv(study / "tables" / "ed_gap.csv", need)
    if rows is not None:
        s.intro = (
            "Gap = CER of the dual-output model − CER of the single-output model of that output "
            "(surface: SSO, meaning: MSO), percentage points; positive = multi-task learning hurts. "
            "Brackets: 95 % paired bootstrap CI; bold: the CI excludes 0. ρ: Spearman correlation "
            f"between ED and the per-utterance gap. Reference rows: {CITATION}, Figure 2 (DO vs SO)."
        )
        head = [
            "language / output",
            "model",
            *(f"ED {b}" for b in ED_BIN_LABELS),
            "all",
            "Spearman ρ (p)",
        ]
        body = []
        groups = sorted({(r["language"], r["output"], r["unit"]) for r in rows},
                        key=lambda g: (g[0], OUTPUTS.index(g[1]) if g[1] in OUTPUTS else 2, g[2]))  # fmt: skip
        for lang, output, unit in groups:
            name = f"{lang} {output}" + (" (PER)" if unit == "phone" else "")
            group = [
                r for r in rows if (r["language"], r["output"], r["unit"]) == (lang, output, unit)
            ]
            for model in model_order(r["model"] for r in group):
                cells = {r["ed_bin"]: r for r in group if r["model"] == model}
                every = cells.get("all", {})
                rho, p = number(every.get("spearman_rho")), number(every.get("spearman_p"))
                baseline = fnd.model_name(
                    every.get("baseline") or next(iter(cells.values()))["baseline"]
                )
                body.append(
                    [Cell(name), Cell(f"{fnd.model_name(model)} − {baseline}")]
                    + [_gap_cell(cells[b]) if b in cells else Cell("—") for b in ED_BIN_LABELS]
                    + [_gap_cell(every) if every else Cell("—"),
                       Cell("—" if math.isnan(rho) else f"{fnd.signed(rho)} ({p:.2g})")]
                )  # fmt: skip
            if unit == "char" and (lang, output) in REFERENCE_GAP:
                ref = REFERENCE_GAP[(lang, output)]
                body.append(
                    [
                        Cell(name),
                        Cell("reference study"),
                        *(Cell(fnd.signed(g)) for g in ref),
                        Cell(""),
                        Cell(""),
                    ]
                )
        s.tables.append(Table("CER gap per ED bin (percentage points)", head, body, labels=2))
        s.findings = fnd.gap_findings(rows)
        s.notes = _notes(study, "tables/ed_gap.md")
    _figure(study, "figures/ed_gap.png", "CER gap DO − SO per ED bin with 95 % CIs, and the reference study's gaps.", s,
            table_missing=None if rows is not None else "tables/ed_gap.csv")  # fmt: skip
    return s


def training_section(study: Path) -> Section:
    s = Section("training", "Training curves")
    runs = [r for r in read_training_runs(study / "exp") if r.rows]
    if not runs:
        s.missing.append(
            "exp/<lang>/<model>/seed<k>/metrics.csv: not found (run the training stage)."
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


def cka_section(study: Path, part: str, reference: dict, table_no: int) -> Section:
    s = Section(f"cka-{part}", f"{part.capitalize()} CKA (Table {table_no})")
    rows = read_csv(study / "tables" / f"cka_{part}.csv", ("cka",))
    if rows is not None:
        diag = cka_diagonal(rows)
        layers = sorted({layer for by_layer in diag.values() for layer in by_layer})
        s.intro = (
            f"Linear CKA between the {part} layers of two models, same layer on both sides, mean ± std "
            f"over seeds (the CSV also holds every layer pair). Reference rows: {CITATION}, Table {table_no} "
            "(its models have 12 encoder and 8 decoder layers; a layer index only matches the same index)."
        )
        body = []
        for (lang, pair), by_layer in diag.items():
            names = " vs ".join(fnd.model_name(m) for m in pair)
            line = [Cell(lang), Cell(names)]
            for layer in layers:
                values = by_layer.get(layer, [])
                line.append(Cell(fmt_rate(*mean_std(values), len(values))))
            body.append(line)
            ref = {
                k[2]: v
                for k, v in reference.items()
                if k[0] == lang and k[1] == tuple(sorted(pair))
            }
            if ref:
                extra = sorted(set(ref) - set(layers))
                cells = [Cell(f"{ref[layer]:.2f}" if layer in ref else "") for layer in layers]
                note = "; ".join(f"layer {k}: {ref[k]:.2f}" for k in extra)
                body.append(
                    [
                        Cell(f"{lang} (reference study)"),
                        Cell(names + (f" ({note})" if note else "")),
                        *cells,
                    ]
                )
        if body:
            head = ["language", "models", *(f"layer {k}" for k in layers)]
            s.tables.append(Table(f"{part.capitalize()} CKA per layer", head, body, labels=2))
        else:
            s.missing.append(f"tables/cka_{part}.csv: no same-layer rows with a CKA value.")
        s.findings = fnd.cka_findings(rows, part, reference)
    _figure(study, f"figures/cka_{part}.png", f"{part.capitalize()} CKA between models, layer by layer.", s,
            table_missing=None if rows is not None else f"tables/cka_{part}.csv")  # fmt: skip
    return s


def entanglement_section(study: Path) -> Section:
    s = Section("entanglement", "Entanglement")
    path = study / "tables" / "entanglement.csv"
    rows = read_csv(path)
    if rows is None:
        s.missing.append(
            f"tables/entanglement.csv: not found ({RUN_HINT['tables/entanglement.csv']})."
        )
        return s
    if not rows:
        s.missing.append("tables/entanglement.csv: no rows.")
        return s
    head = list(rows[0])
    body = [[Cell(_fmt_cell(r.get(h))) for h in head] for r in rows[:MAX_ROWS]]
    s.tables.append(
        Table("Entanglement measures (tables/entanglement.csv)", head, body, labels=len(head))
    )
    if len(rows) > MAX_ROWS:
        s.notes.append(f"{len(rows) - MAX_ROWS} more row(s) in tables/entanglement.csv.")
    return s


def _fmt_cell(cell: str | None) -> str:
    """A generic CSV cell: long floats rounded to 4 significant decimals, anything else as is."""
    if cell is None:
        return ""
    if re.fullmatch(r"-?\d+\.\d{5,}(e-?\d+)?", cell):
        return f"{float(cell):.4g}"
    return cell


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
        cka_section(study, "encoder", REFERENCE_CKA_ENCODER, 3),
        cka_section(study, "decoder", REFERENCE_CKA_DECODER, 4),
        entanglement_section(study),
    ]
    report = Report(study, sections, study / "report.html", study / "report.md")
    atomic_write_text(report.markdown, render_markdown(report), overwrite=True)
    atomic_write_text(report.html, render_html(report), overwrite=True)
    return report
