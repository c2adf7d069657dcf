"""Where multi-task learning helps or hurts: the CER gap DO - SO per ED bin.

For one language and output, a dual-output model X is compared with the
single-output model of that output (surface: SSO, meaning: MSO), utterance by
utterance on the same test set, within each divergence bin (0 / 1-3 / 4-10 /
>10, :data:`~dualasr.text.divergence.ED_BIN_LABELS`) and over all utterances:

- ``gap = CER_X - CER_SO`` in percentage points (positive = multi-task hurts),
  both CERs corpus-level over the bin (:func:`~dualasr.score.rates.corpus_rate`).
- Paired bootstrap 95 % CI of the gap (Efron & Tibshirani 1993; Bisani & Ney
  2004 for ASR error rates): draw the bin's ``n`` utterances with
  replacement, recompute both corpus-level CERs on the *same* draw, take the
  2.5th and 97.5th percentiles of the ``B`` resampled gaps. Seeded and
  reproducible; each table cell gets its own stream derived from the seed and
  the cell's name, so one cell's CI does not depend on which others are computed.
- Spearman's rank correlation (scipy) between an utterance's ED and its
  per-utterance gap ``100 * (errors_X - errors_SO) / ref_length`` over the
  utterances of (language, output) with a non-empty reference, with its
  two-sided p-value.

Several seeds. Runs are paired by seed number (X seed k with SO seed k); a seed
present for one model only is left out of the gap and reported in the notes.
``gap`` is the pooled gap over the paired seeds, which equals the mean of the
per-seed gaps (every seed scores the same references); ``gap_std`` is the
sample std (``ddof=1``) of the per-seed gaps. The CI and the Spearman
correlation use the pooled per-utterance data: an utterance's errors are summed
over seeds and the bootstrap resamples utterances (not utterance-seed pairs),
since the seeds of one utterance are not independent draws.

A bin with no utterances, or a comparison whose output or baseline is missing,
is a row with ``n = 0`` and NaN values, never an error.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from dualasr.atomic import atomic_write_text, save_figure
from dualasr.layout import OUTPUTS, REFERENCE_SO, default_label
from dualasr.reference import CITATION, REFERENCE_GAP
from dualasr.score.rates import (
    OutputScores,
    References,
    corpus_rate,
    fmt_number,
    mean_std,
    notes_markdown,
)
from dualasr.tables import Cell, Table, markdown
from dualasr.text.divergence import ED_BIN_LABELS, bin_range

ALL = "all"  # the row over every utterance of (language, output)

@dataclass(frozen=True)
class GapRow:
    """One cell of the ED-gap table: model vs baseline on (language, output, unit, ED bin).

    Rates in percent, gap and CI in percentage points. ``n``: utterances
    (0 = empty bin or missing output); ``seeds``: the paired seeds. Spearman
    fields are set on the ``ed_bin == "all"`` row only; ``reference`` is the
    reference study's gap (model ``do``, character units, ED bins only);
    ``label`` / ``baseline_label``: how tables show the two models.
    """

    language: str
    output: str
    unit: str
    model: str
    baseline: str
    ed_bin: str
    n: int
    seeds: tuple[int, ...]
    cer_so: float
    cer_do: float
    gap: float
    gap_std: float
    ci_low: float
    ci_high: float
    reference: float | None = None
    spearman_rho: float = math.nan
    spearman_p: float = math.nan
    spearman_n: int = 0
    label: str = ""
    baseline_label: str = ""
    split: str = "test"  # the test split scored

    def __post_init__(self):
        object.__setattr__(self, "label", self.label or default_label(self.model))
        object.__setattr__(self, "baseline_label", self.baseline_label or default_label(self.baseline))


def cell_rng(seed: int, *key: str) -> np.random.Generator:
    """A generator for one table cell: ``seed`` plus a stable hash of the cell's name."""
    return np.random.default_rng([seed, zlib.crc32("/".join(key).encode())])


def paired_bootstrap(
    errors_do: np.ndarray,
    errors_so: np.ndarray,
    ref_len: np.ndarray,
    resamples: int = 1000,
    rng: np.random.Generator | int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile CI of the corpus-level gap ``100 * (sum(errors_do) - sum(errors_so)) / sum(ref_len)``.

    Inputs are ``(n,)`` per-utterance counts of the same utterances. Each of the
    ``resamples`` draws picks ``n`` utterance indices with replacement and
    recomputes both CERs on them (the reference length is shared, so the gap is
    the resampled error difference over the resampled length). Vectorised in
    blocks of at most ~2 M indices. Returns ``(low, high)``; NaN for ``n = 0``.
    """
    n = len(ref_len)
    if n == 0 or resamples < 1:
        return math.nan, math.nan
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    diff = np.asarray(errors_do, dtype=float) - np.asarray(errors_so, dtype=float)
    length = np.asarray(ref_len, dtype=float)
    gaps = np.empty(resamples)
    block = max(1, 2_000_000 // n)
    for start in range(0, resamples, block):
        idx = rng.integers(0, n, size=(min(block, resamples - start), n))
        den = length[idx].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            gaps[start : start + len(idx)] = np.where(den > 0, 100.0 * diff[idx].sum(axis=1) / den, np.nan)
    if np.isnan(gaps).all():
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0
    low, high = np.nanquantile(gaps, [alpha, 1.0 - alpha])
    return float(low), float(high)


def spearman(ed: np.ndarray, gap: np.ndarray) -> tuple[float, float]:
    """Spearman's rho between ED and per-utterance gap, with its two-sided p-value
    (scipy.stats.spearmanr). NaN when fewer than 3 points or either is constant."""
    if len(ed) < 3 or np.all(ed == ed[0]) or np.all(gap == gap[0]):
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        res = stats.spearmanr(ed, gap)
    return float(res.statistic), float(res.pvalue)


def _bin_masks(ed: np.ndarray) -> dict[str, np.ndarray]:
    masks = {}
    for label in ED_BIN_LABELS:
        lo, hi = bin_range(label)
        masks[label] = (ed >= lo) & (ed <= hi if hi is not None else True)
    masks[ALL] = np.ones(len(ed), dtype=bool)
    return masks


def ed_gap_rows(
    refs: References,
    output: str,
    model: str,
    runs: Sequence[OutputScores],
    baseline: str,
    baseline_runs: Sequence[OutputScores],
    bootstrap: int = 1000,
    seed: int = 0,
    notes: list[str] | None = None,
    labels: tuple[str, str] = ("", ""),
) -> list[GapRow]:
    """Gap rows (each ED bin, then "all") of ``model``'s ``output`` vs the
    single-output model ``baseline`` (:func:`dualasr.layout.baseline_of`), per
    unit of the references. ``runs`` / ``baseline_runs``: the seeds of each
    model (empty = output missing); ``labels``: how tables show the two models.
    Unpaired seeds and undefined correlations are appended to ``notes``."""
    notes = notes if notes is not None else []
    do = {r.seed: r for r in runs}
    so = {r.seed: r for r in baseline_runs}
    paired = sorted(set(do) & set(so))
    where = f"{refs.language} {output}: {model} vs {baseline}" + (f" ({refs.split})" if refs.split != "test" else "")
    if do and so and set(do) != set(so):
        unpaired = sorted(set(do) ^ set(so))
        notes.append(
            f"{where}: seed(s) {', '.join(map(str, unpaired))} have no partner run; "
            f"the gap uses seed(s) {', '.join(map(str, paired)) or 'none'}"
        )
    units = np.array(refs.units(output))
    masks = _bin_masks(refs.ed)
    rows = []
    for unit in sorted(set(units.tolist())):
        in_unit = units == unit
        if paired:
            e_do = np.sum([do[k].char_errors for k in paired], axis=0)
            e_so = np.sum([so[k].char_errors for k in paired], axis=0)
            length = do[paired[0]].ref_chars * len(paired)
        for label, in_bin in masks.items():
            m = in_unit & in_bin
            n = int(m.sum()) if paired else 0
            reference = None
            # The reference study's gaps belong to its own DO against its SO models.
            reference_pair = model == "do" and baseline in REFERENCE_SO
            if reference_pair and unit == "char" and label != ALL and (refs.language, output) in REFERENCE_GAP:
                reference = REFERENCE_GAP[(refs.language, output)][ED_BIN_LABELS.index(label)]
            if n == 0:
                rows.append(GapRow(refs.language, output, unit, model, baseline, label, 0, tuple(paired),
                                   *(math.nan,) * 6, reference, label=labels[0], baseline_label=labels[1],
                                   split=refs.split))  # fmt: skip
                continue
            cer_so = corpus_rate(e_so[m], length[m])
            cer_do = corpus_rate(e_do[m], length[m])
            per_seed = [
                corpus_rate(do[k].char_errors[m], do[k].ref_chars[m])
                - corpus_rate(so[k].char_errors[m], so[k].ref_chars[m])
                for k in paired
            ]
            rng = cell_rng(seed, refs.language, output, unit, model, label)
            low, high = paired_bootstrap(e_do[m], e_so[m], length[m], bootstrap, rng)
            rho, p, n_rho = math.nan, math.nan, 0
            if label == ALL:
                ok = m & (length > 0)
                n_rho = int(ok.sum())
                per_utt = 100.0 * (e_do[ok] - e_so[ok]) / length[ok]
                rho, p = spearman(refs.ed[ok], per_utt)
                if math.isnan(rho):
                    notes.append(
                        f"{where} ({unit}): Spearman ρ undefined (fewer than 3 utterances, or ED or gap constant)"
                    )
                if n_rho < n:
                    notes.append(
                        f"{where} ({unit}): {n - n_rho} utterance(s) with an empty normalised reference "
                        "left out of the Spearman correlation"
                    )
            rows.append(
                GapRow(refs.language, output, unit, model, baseline, label, n, tuple(paired), cer_so, cer_do,
                       cer_do - cer_so, mean_std(per_seed)[1], low, high, reference, rho, p, n_rho, *labels, refs.split)
            )  # fmt: skip
    return rows


GAP_COLUMNS = (
    "split", "language", "output", "unit", "model", "label", "baseline", "baseline_label", "ed_bin", "n", "n_seeds", "seeds", "cer_so", "cer_do",
    "gap", "gap_std", "ci_low", "ci_high", "reference_gap", "spearman_rho", "spearman_p", "spearman_n",
)  # fmt: skip


def gaps_csv(rows: Sequence[GapRow]) -> str:
    """``tables/ed_gap.csv``: one row per test split, language, output, unit, model and ED bin (:data:`GAP_COLUMNS`)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(GAP_COLUMNS)
    for r in rows:
        w.writerow([
            r.split, r.language, r.output, r.unit, r.model, r.label, r.baseline, r.baseline_label, r.ed_bin, r.n, len(r.seeds),
            ";".join(map(str, r.seeds)), fmt_number(r.cer_so), fmt_number(r.cer_do), fmt_number(r.gap),
            fmt_number(r.gap_std), fmt_number(r.ci_low), fmt_number(r.ci_high), fmt_number(r.reference),
            fmt_number(r.spearman_rho), fmt_number(r.spearman_p, 6) if r.ed_bin == ALL else "",
            r.spearman_n if r.ed_bin == ALL else "",
        ])  # fmt: skip
    return buf.getvalue()


def gap_row(cells: dict[str, str]) -> GapRow:
    """A row of ``tables/ed_gap.csv`` read back (empty numbers are NaN)."""

    def num(key: str) -> float:
        return float(cells[key] or "nan")

    return GapRow(
        cells["language"], cells["output"], cells["unit"], cells["model"], cells["baseline"], cells["ed_bin"],
        int(cells["n"]), tuple(int(x) for x in cells["seeds"].split(";") if x), num("cer_so"), num("cer_do"),
        num("gap"), num("gap_std"), num("ci_low"), num("ci_high"),
        float(cells["reference_gap"]) if cells["reference_gap"] else None, num("spearman_rho"), num("spearman_p"),
        int(cells["spearman_n"] or 0), cells["label"], cells["baseline_label"], cells["split"],
    )  # fmt: skip


def ci_degenerate(r: GapRow) -> bool:
    """A bin whose bootstrap CI has zero width over a single utterance, or with
    both ends equal and the gap nonzero: every resample gave the same gap, so the
    interval says nothing about uncertainty."""
    return r.n < 2 or (r.ci_low == r.ci_high and r.ci_low != 0)


def _gap_cell(r: GapRow) -> Cell:
    if r.n == 0 or math.isnan(r.gap):
        return Cell("— (n=0)")
    std = "" if math.isnan(r.gap_std) else f" ± {r.gap_std:.2f}"
    ci = "" if math.isnan(r.ci_low) else f" [{r.ci_low:+.2f}, {r.ci_high:+.2f}]"
    excludes = not math.isnan(r.ci_low) and (r.ci_low > 0 or r.ci_high < 0) and not ci_degenerate(r)
    return Cell(f"{r.gap:+.2f}{std}{ci} (n={r.n})", strong=excludes)


GAPS_INTRO = (
    "Positive = the model is worse than the single-output model of that output "
    "(the SO model of the same language and seed whose only output it is). Cell: gap [± std over seeds] "
    "[95 % paired bootstrap CI of the bin's utterances] (n utterances); bold: the CI excludes 0. With several "
    "seeds the gap and CI are over the per-utterance errors pooled across seeds (gap = mean of per-seed gaps). "
    f"ρ: Spearman correlation between ED and the per-utterance gap. *reference study*: {CITATION}, DO vs SO."
)


def gap_table(rows: Sequence[GapRow]) -> Table:
    """Per language / output, one line per model (in the rows' order, by label,
    against its baseline's label) and one for the reference study, columns = ED
    bins, all, Spearman. With several test splits each language / output has
    a group per split, next to each other, named after the split."""
    head = ["language / output", "model", *(f"ED {b}" for b in ED_BIN_LABELS), "all", "Spearman ρ (p)"]
    table = Table(head, caption="CER gap per ED bin (percentage points)", labels=2)
    several = len({r.split for r in rows}) > 1
    groups = sorted({(r.language, r.output, r.unit, r.split) for r in rows},
                    key=lambda g: (g[0], OUTPUTS.index(g[1]), g[2], g[3]))  # fmt: skip
    for lang, output, unit, split in groups:
        name = f"{lang} {output}" + (" (PER)" if unit == "phone" else "") + (f" {split}" if several else "")
        group = [r for r in rows if (r.language, r.output, r.unit, r.split) == (lang, output, unit, split)]
        for model in dict.fromkeys(r.model for r in group):
            cells = {r.ed_bin: r for r in group if r.model == model}
            every = cells[ALL]
            rho = "—" if math.isnan(every.spearman_rho) else f"{every.spearman_rho:+.2f} ({every.spearman_p:.2g})"
            bins = [_gap_cell(cells[b]) for b in ED_BIN_LABELS]
            table.add([name, f"{every.label} − {every.baseline_label}", *bins, _gap_cell(every), rho])
        if unit == "char" and (lang, output) in REFERENCE_GAP:
            table.add([name, "reference study", *(f"{g:+.2f}" for g in REFERENCE_GAP[(lang, output)]), "", ""],
                      reference=True)  # fmt: skip
    return table


def gaps_markdown(rows: Sequence[GapRow], bootstrap: int, notes: Sequence[str] = ()) -> str:
    """``tables/ed_gap.md``: :func:`gap_table` under a heading, then the notes."""
    lines = [
        "# CER gap DO - SO by surface-meaning divergence (percentage points, test set(s))",
        "",
        GAPS_INTRO + f" Bootstrap: {bootstrap} resamples.",
        "",
        markdown(gap_table(rows)) if rows else "No dual-output model to compare: no gaps.",
    ]
    return "\n".join(lines + notes_markdown(notes)) + "\n"


def plot_ed_gap(rows: Sequence[GapRow], path: str | Path, languages: Sequence[str] | None = None) -> Path:
    """``figures/ed_gap.png``: per language a row of two panels (surface, meaning),
    the gap per ED bin with its CI as error bars, one series per model (and unit),
    the reference study's gaps as a second series. Written atomically."""
    languages = list(languages) if languages else sorted({r.language for r in rows})
    fig, axes = gap_figure(len(languages))
    x = np.arange(len(ED_BIN_LABELS))
    for i, lang in enumerate(languages):
        for j, output in enumerate(OUTPUTS):
            ax = axes[i, j]
            series = list(dict.fromkeys((r.model, r.unit, r.split) for r in rows if (r.language, r.output) == (lang, output)))
            several = len({s for _, _, s in series}) > 1
            width = 0.7 / (len(series) + 1)
            for k, (model, unit, split) in enumerate(series):
                key = (lang, output, model, unit, split)
                cells = {r.ed_bin: r for r in rows if (r.language, r.output, r.model, r.unit, r.split) == key}
                gap = np.array([cells[b].gap for b in ED_BIN_LABELS])
                low = np.array([cells[b].ci_low for b in ED_BIN_LABELS])
                high = np.array([cells[b].ci_high for b in ED_BIN_LABELS])
                # A percentile CI need not contain the point estimate on small,
                # skewed bins; matplotlib wants non-negative error bar lengths.
                yerr = np.clip(np.nan_to_num(np.vstack([gap - low, high - gap])), 0, None)
                label = f"{cells[ALL].label} − {cells[ALL].baseline_label}" + (" (PER)" if unit == "phone" else "")
                label += f" {split}" if several else ""
                label += " (no data)" if np.isnan(gap).all() else ""
                ax.errorbar(x + (k - len(series) / 2) * width, gap, yerr=yerr, fmt="o-", capsize=3, label=label)
            if (lang, output) in REFERENCE_GAP:
                ax.plot(x + (len(series) / 2) * width, REFERENCE_GAP[(lang, output)], "s--", color="gray",
                        mfc="none", label="reference study")  # fmt: skip
            style_gap_axes(ax, f"{lang} {output}", "CER gap DO − SO (pp)")
    return save_figure(fig, path, dpi=120)


def gap_figure(languages: int):
    """A figure of gap panels: one row per language, surface and meaning side
    by side; returns ``(figure, axes (rows, 2))``."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, safe in servers and threads

    fig = Figure(figsize=(9, 3.2 * max(1, languages)), layout="constrained")
    return fig, fig.subplots(max(1, languages), 2, squeeze=False, sharex=True)


def style_gap_axes(ax, title: str, ylabel: str, legend: bool = True) -> None:
    """The look every per-ED-bin gap panel shares (this figure and the report's
    method comparison): a zero line, ED bins on x, the legend when there is one
    (unless ``legend`` is false: one legend for the figure)."""
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_title(title)
    ax.set_xticks(np.arange(len(ED_BIN_LABELS)), [f"ED {b}" for b in ED_BIN_LABELS])
    ax.set_ylabel(ylabel)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")


def write_gaps(rows: Sequence[GapRow], out_dir: str | Path, bootstrap: int, notes: Sequence[str] = ()) -> list[Path]:
    """Write ``tables/ed_gap.csv`` and ``tables/ed_gap.md`` under ``out_dir`` (overwriting)."""
    tables = Path(out_dir) / "tables"
    atomic_write_text(tables / "ed_gap.csv", gaps_csv(rows), overwrite=True)
    atomic_write_text(tables / "ed_gap.md", gaps_markdown(rows, bootstrap, notes), overwrite=True)
    return [tables / "ed_gap.csv", tables / "ed_gap.md"]
