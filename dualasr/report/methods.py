"""The method comparison: every dual-output variant of a study against its SO
models and the plain DO model, per language and output (docs/methods.md).

Made by the report stage, since it joins every earlier stage's outputs: the
score stage's gaps, the analyze stage's entanglement index and the training
logs. Files read (``DIR`` = the study directory)::

    DIR/tables/ed_gap.csv                          gap per ED bin, paired bootstrap CI, CER (score)
    DIR/tables/entanglement.csv                    entanglement index (analyze)
    DIR/exp/<lang>/<name>/seed<k>/train_summary.json  ``parameters`` (training)
    DIR/exp/<lang>/<name>/seed<k>/metrics.csv      per epoch ``seconds`` (dev rows) and ``step`` (training)

and written::

    DIR/tables/methods.csv|md       one row per language, variant and output (METHOD_COLUMNS)
    DIR/figures/method_gaps.png     the gap per ED bin, one line per variant

Per row: the output's test CER (pooled over seeds), the gap model − SO per ED
bin with its 95 % paired bootstrap CI (:mod:`dualasr.score.ed_gap`), the
entanglement index E and the encoder index (mean over seeds), the parameters
beyond the plain DO model's (``train_summary.json``: the model's parameter
count), the seconds per training step and their ratio to the plain DO's, and
whether the output meets the goal **no negative transfer**: the CI's lower end
is at or below 0 in every ED bin that has utterances. Seconds per step are the
epochs' ``seconds`` summed over the run's final step count: wall time of the
training loop *and* the end-of-epoch dev pass, measured in the study's own
jobs (which share the cores with other jobs), so they compare variants
trained side by side, not machines.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dualasr.analysis.analyze import ENTANGLEMENT_COLUMNS
from dualasr.atomic import atomic_write_text, save_figure
from dualasr.layout import EXP_DIR, OUTPUTS, SUMMARY_FILE, Run, discover_runs
from dualasr.report.inputs import ReportError, TrainingRun, read_cka, read_csv, read_training_runs
from dualasr.score.ed_gap import ALL, GAP_COLUMNS, GapRow, gap_figure, gap_row, style_gap_axes
from dualasr.score.rates import fmt_number
from dualasr.tables import Cell, Table, markdown
from dualasr.text.divergence import ED_BIN_LABELS

PLAIN_DO = "do"  # the variant every method's cost is measured against

METHOD_COLUMNS = (
    "language", "split", "model", "label", "output", "unit", "baseline", "seeds", "cer", "cer_so",
    *(f"{k}_{b}" for b in (*ED_BIN_LABELS, ALL) for k in ("gap", "ci_low", "ci_high", "n")),
    "entanglement", "encoder_index", "parameters", "extra_parameters", "seconds_per_step", "step_time_ratio",
    "no_negative_transfer",
)  # fmt: skip

METHODS_INTRO = (
    "Every dual-output model of the study against the single-output model of each output (gap = CER model − "
    "SO, percentage points, per ED bin, with its 95 % paired bootstrap CI; bold: the CI lies above 0, "
    "negative transfer) and against the plain DO model (extra parameters; seconds per training step, the "
    "epochs' wall time including the dev pass over the steps, from metrics.csv, and its ratio to DO's). "
    "E: entanglement index (last decoder layers); enc.: encoder index (last encoder layers feeding the two "
    "outputs). Goal: no negative transfer on either output, i.e. the CI of the gap reaches 0 or below in "
    "every ED bin."
)


@dataclass(frozen=True)
class MethodRow:
    """One language, test split, variant and output. ``gaps``: the ed_gap rows of the ED
    bins in :data:`ED_BIN_LABELS` order, then the ``all`` row. Numbers are NaN
    when their input is missing; ``meets_goal`` is None when no bin has a CI."""

    language: str
    split: str
    model: str
    label: str
    output: str
    unit: str
    gaps: tuple[GapRow, ...]
    entanglement: float
    encoder_index: float
    parameters: float
    extra_parameters: float
    seconds_per_step: float
    step_time_ratio: float

    @property
    def overall(self) -> GapRow:
        return self.gaps[-1]

    @property
    def meets_goal(self) -> bool | None:
        cis = [g.ci_low for g in self.gaps[:-1] if g.n > 0 and not math.isnan(g.ci_low)]
        return all(low <= 0 for low in cis) if cis else None

    def worst_bin(self) -> GapRow | None:
        """The ED bin whose CI lies furthest above 0 (None when none does)."""
        above = [g for g in self.gaps[:-1] if g.n > 0 and g.ci_low > 0]
        return max(above, key=lambda g: g.ci_low) if above else None


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def _parameters(run: Run) -> float:
    path = run.dir / SUMMARY_FILE
    if not path.is_file():
        return math.nan
    try:
        return float(json.loads(path.read_text(encoding="utf-8"))["parameters"])
    except (ValueError, KeyError, TypeError) as e:
        raise ReportError(f"{path}: no parameter count ({e!r}); train the run again") from None


def seconds_per_step(run: TrainingRun) -> float:
    """Sum of the dev rows' ``seconds`` (each epoch's training and dev pass) over
    the last dev row's ``step`` (updates so far); NaN without them."""
    rows = [r for r in run.rows if r["split"] == "dev" and r["metric"] == "seconds"]
    steps = max((int(r["step"]) for r in rows), default=0)
    return sum(float(r["value"]) for r in rows) / steps if steps else math.nan


def method_rows(study: Path) -> list[MethodRow] | None:
    """The comparison rows of ``study``, or None when it has no dual-output
    variant beyond the plain DO model, or no ``tables/ed_gap.csv``."""
    gap_cells = read_csv(study / "tables" / "ed_gap.csv", GAP_COLUMNS)
    exp = study / EXP_DIR
    runs = discover_runs(exp) if exp.is_dir() else []
    dual = {(r.info.language, r.info.name) for r in runs if not r.info.single}
    if gap_cells is None or not {name for _, name in dual} - {PLAIN_DO}:
        return None
    gaps = [g for g in map(gap_row, gap_cells) if (g.language, g.model) in dual]
    ent = read_cka(study / "tables" / "entanglement.csv", ENTANGLEMENT_COLUMNS) or []
    params: dict[tuple[str, str], list[float]] = {}
    for r in runs:
        params.setdefault((r.info.language, r.info.name), []).append(_parameters(r))
    times: dict[tuple[str, str], list[float]] = {}
    for t in read_training_runs(exp):
        times.setdefault((t.language, t.model), []).append(seconds_per_step(t))
    rows = []
    for lang, split, name, output, unit in dict.fromkeys((g.language, g.split, g.model, g.output, g.unit) for g in gaps):
        key = (lang, split, name, output, unit)
        cells = {g.ed_bin: g for g in gaps if (g.language, g.split, g.model, g.output, g.unit) == key}
        if any(b not in cells for b in (*ED_BIN_LABELS, ALL)):
            raise ReportError(f"{study / 'tables' / 'ed_gap.csv'}: {lang} {split} {name} {output} lacks ED bin rows")
        mine = [e for e in ent if (e["lang"], e["model"]) == (lang, name)]
        p, p_do = _mean(params.get((lang, name), [])), _mean(params.get((lang, PLAIN_DO), []))
        s, s_do = _mean(times.get((lang, name), [])), _mean(times.get((lang, PLAIN_DO), []))
        rows.append(MethodRow(
            lang, split, name, cells[ALL].label, output, unit, tuple(cells[b] for b in (*ED_BIN_LABELS, ALL)),
            _mean([e["index"] for e in mine]), _mean([e["encoder_index"] for e in mine]),
            p, p - p_do, s, s / s_do if s_do else math.nan,
        ))  # fmt: skip
    order = {name: i for i, name in enumerate(dict.fromkeys(r.model for r in rows))}
    return sorted(rows, key=lambda r: (r.language, r.split, order[r.model] if r.model != PLAIN_DO else -1,
                                       OUTPUTS.index(r.output), r.unit))  # fmt: skip


def _goal(value: bool | None) -> str:
    return "" if value is None else "yes" if value else "no"


def methods_csv(rows: Sequence[MethodRow]) -> str:
    """``tables/methods.csv``: :data:`METHOD_COLUMNS`, one row per language, variant and output."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(METHOD_COLUMNS)
    for r in rows:
        every = r.overall
        per_bin = [x for g in r.gaps for x in (fmt_number(g.gap), fmt_number(g.ci_low), fmt_number(g.ci_high), g.n)]
        w.writerow([
            r.language, r.split, r.model, r.label, r.output, r.unit, every.baseline, ";".join(map(str, every.seeds)),
            fmt_number(every.cer_do), fmt_number(every.cer_so), *per_bin, fmt_number(r.entanglement),
            fmt_number(r.encoder_index), fmt_number(r.parameters, 0), fmt_number(r.extra_parameters, 0),
            fmt_number(r.seconds_per_step), fmt_number(r.step_time_ratio, 3), _goal(r.meets_goal),
        ])  # fmt: skip
    return buf.getvalue()


def _gap(g: GapRow) -> Cell:
    if g.n == 0 or math.isnan(g.gap):
        return Cell("— (n=0)")
    ci = "" if math.isnan(g.ci_low) else f" [{g.ci_low:+.2f}, {g.ci_high:+.2f}]"
    return Cell(f"{g.gap:+.2f}{ci}", strong=g.ci_low > 0)


def _num(x: float, fmt: str) -> str:
    return "—" if math.isnan(x) else format(x, fmt)


def methods_table(rows: Sequence[MethodRow]) -> Table:
    """One line per language, test split, variant and output, the plain DO first."""
    head = ["language", "split", "model", "output", "CER", *(f"gap ED {b}" for b in ED_BIN_LABELS), "E", "enc.",
            "extra params", "s/step (× DO)", "no negative transfer"]  # fmt: skip
    table = Table(head, caption="Methods against negative transfer", labels=4)
    for r in rows:
        out = r.output + (" (PER)" if r.unit == "phone" else "")
        step = _num(r.seconds_per_step, ".3f") + ("" if math.isnan(r.step_time_ratio) else f" (×{r.step_time_ratio:.2f})")
        table.add([
            r.language, r.split, r.label, out, _num(r.overall.cer_do, ".2f"), *(_gap(g) for g in r.gaps[:-1]),
            _num(r.entanglement, ".3f"), _num(r.encoder_index, ".3f"), _num(r.extra_parameters, "+,.0f"), step,
            _goal(r.meets_goal) or "—",
        ])  # fmt: skip
    return table


def plot_method_gaps(rows: Sequence[MethodRow], path: str | Path) -> Path:
    """``figures/method_gaps.png``: per language a row of two panels (surface,
    meaning), the gap per ED bin, one line per variant with its CI as a light
    band. Written atomically."""
    languages = sorted({r.language for r in rows})
    models = list(dict.fromkeys(r.model for r in rows))
    colours = {m: f"C{i % 10}" for i, m in enumerate(models)}
    # One line style per test split, named in the legend when there are several.
    splits = list(dict.fromkeys(r.split for r in rows))
    styles = dict(zip(splits, ["o-", "s--", "^:", "d-."] * len(splits), strict=False))
    fig, axes = gap_figure(len(languages))
    x = np.arange(len(ED_BIN_LABELS))
    for i, lang in enumerate(languages):
        for j, output in enumerate(OUTPUTS):
            ax = axes[i, j]
            for r in (r for r in rows if (r.language, r.output) == (lang, output)):
                bins = r.gaps[:-1]
                label = r.label + (" (PER)" if r.unit == "phone" else "") + (f" {r.split}" if len(splits) > 1 else "")
                ax.plot(x, [g.gap for g in bins], styles[r.split], color=colours[r.model], label=label)
                ax.fill_between(x, [g.ci_low for g in bins], [g.ci_high for g in bins], color=colours[r.model],
                                alpha=0.12, lw=0)  # fmt: skip
            style_gap_axes(ax, f"{lang} {output}", "CER gap model − SO (pp)", legend=False)
    # Every panel draws the same variants: one legend under the panels, not one over each panel's lines.
    entries = {label: h for ax in axes.flat for h, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncols=min(2, len(entries)),
                   fontsize="small")  # fmt: skip
    return save_figure(fig, path, dpi=120)


def write_methods(rows: Sequence[MethodRow], study: Path) -> list[Path]:
    """Write ``tables/methods.csv``, ``tables/methods.md`` and ``figures/method_gaps.png`` (overwriting)."""
    tables = study / "tables"
    md = "\n".join(["# Methods against negative transfer (test set)", "", METHODS_INTRO, "",
                    markdown(methods_table(rows))]) + "\n"  # fmt: skip
    atomic_write_text(tables / "methods.csv", methods_csv(rows), overwrite=True)
    atomic_write_text(tables / "methods.md", md, overwrite=True)
    return [tables / "methods.csv", tables / "methods.md", plot_method_gaps(rows, study / "figures" / "method_gaps.png")]
