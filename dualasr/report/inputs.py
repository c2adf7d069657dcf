"""What the report reads from a study directory, as plain rows.

Every reader returns ``None`` when its file is absent, so a section whose
inputs were not produced (a study stopped after the corpus, an analysis not
run) can say so instead of failing. A file that exists but cannot be parsed is
a :class:`ReportError` naming it.

Files (``DIR`` = the study directory)::

    DIR/tables/corpus.md                       markdown table (dualasr.data.stats.format_table)
    DIR/tables/cer.csv                         dualasr.score.errors.RATE_COLUMNS
    DIR/tables/ed_gap.csv                      dualasr.score.ed_gap.GAP_COLUMNS
    DIR/tables/cka_encoder.csv, cka_decoder.csv  long format: lang, seed, pair, model_x,
                                               model_y, layer_x, layer_y, cka
    DIR/tables/entanglement.csv                any columns (shown as is)
    DIR/exp/<lang>/<model>/seed<k>/metrics.csv long format: epoch, step, split, metric, value
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

from dualasr.analysis.analyze import label
from dualasr.errors import DualasrError


class ReportError(DualasrError, ValueError):
    """A study directory or input table the report cannot use; the message names the file."""


Row = dict[str, str]


def number(cell: str | None) -> float:
    """A CSV cell as a float; empty, missing or non-numeric is NaN."""
    try:
        return float(cell) if cell not in (None, "") else math.nan
    except ValueError:
        return math.nan


def read_csv(path: Path, required: tuple[str, ...] = ()) -> list[Row] | None:
    """Rows of a CSV file with a header, or ``None`` when it does not exist.
    A header lacking one of ``required`` is an error naming the file."""
    if not path.is_file():
        return None
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ReportError(f"{path}: cannot read CSV ({e})") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise ReportError(
            f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(header) or 'none'})"
        )
    return rows


def read_markdown_table(path: Path) -> tuple[list[str], list[list[str]]] | None:
    """Header and body of the first GitHub-flavoured markdown table in ``path``,
    or ``None`` when the file does not exist."""
    if not path.is_file():
        return None
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    table = []
    for ln in lines:
        if ln.startswith("|"):
            table.append(ln)
        elif table:
            break
    if len(table) < 2 or not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", table[1]):
        raise ReportError(f"{path}: no markdown table (a header line, a |---| line, rows)")

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip("|").split("|")]

    return cells(table[0]), [cells(ln) for ln in table[2:]]


@dataclass(frozen=True)
class TrainingRun:
    """One trained model's metrics log: ``rows`` keep the CSV's long format
    (``epoch``, ``step``, ``split``, ``metric``, ``value`` as strings)."""

    language: str
    model: str
    seed: int
    path: Path
    rows: tuple[Row, ...]

    def per_epoch(self, split: str, metric: str = "loss") -> dict[int, float]:
        """Epoch -> mean of ``metric`` over the ``split`` rows of that epoch
        (train rows are running means over ``log_every`` steps; dev has one row per epoch)."""
        sums: dict[int, list[float]] = {}
        for r in self.rows:
            if r["split"] == split and r["metric"] == metric:
                v = number(r["value"])
                sums.setdefault(int(r["epoch"]), []).append(v)
        return {e: sum(v) / len(v) for e, v in sorted(sums.items())}


def read_training_runs(exp_dir: Path) -> list[TrainingRun]:
    """Every ``<lang>/<model>/seed<k>/metrics.csv`` under ``exp_dir``, sorted by
    language, model, seed. The metric-name column may be called ``metric``
    (dualasr.train.trainer.MetricsLog) or ``key``."""
    runs = []
    for path in sorted(Path(exp_dir).glob("*/*/seed*/metrics.csv")):
        m = re.fullmatch(r"seed(\d+)", path.parent.name)
        if not m:
            continue
        rows = read_csv(path) or []
        if rows and "metric" not in rows[0] and "key" in rows[0]:
            rows = [{**r, "metric": r["key"]} for r in rows]
        need = ("epoch", "split", "metric", "value")
        if rows and any(c not in rows[0] for c in need):
            raise ReportError(
                f"{path}: expected columns {', '.join(need)} (has {', '.join(rows[0])})"
            )
        bad = next((i for i, r in enumerate(rows) if not str(r["epoch"]).isdigit()), None)
        if bad is not None:
            raise ReportError(
                f"{path}: line {bad + 2}: epoch {rows[bad]['epoch']!r} is not an integer"
            )
        runs.append(TrainingRun(path.parent.parent.parent.name, path.parent.parent.name, int(m.group(1)), path,
                                tuple(rows)))  # fmt: skip
    return runs


def cka_pair(row: Row) -> tuple[str, str]:
    """The two representations a CKA row compares, lower-case (``sso``, ``mso``,
    ``do``, ``sdo``/``mdo`` for the DO model's decoders): the ``pair`` cell that
    :mod:`dualasr.analysis.analyze` writes ("MSO vs MDO"), else the labels of its
    ``model_x``/``output_x`` and ``model_y``/``output_y`` columns."""
    if row.get("pair"):
        x, y = row["pair"].split(" vs ")
        return x.lower(), y.lower()
    return (
        label(row["model_x"], row.get("output_x") or None).lower(),
        label(row["model_y"], row.get("output_y") or None).lower(),
    )


def cka_diagonal(rows: list[Row]) -> dict[tuple[str, tuple[str, str]], dict[int, list[float]]]:
    """(language, (model_x, model_y)) -> layer -> CKA values over seeds, for the
    rows comparing the same layer on both sides (``layer_x == layer_y``). Rows with
    a non-numeric layer or a NaN CKA are left out. In order of first appearance."""
    out: dict[tuple[str, tuple[str, str]], dict[int, list[float]]] = {}
    for r in rows:
        lx, ly, value = number(r.get("layer_x")), number(r.get("layer_y")), number(r.get("cka"))
        if math.isnan(lx) or lx != ly or math.isnan(value):
            continue
        out.setdefault((r["lang"], cka_pair(r)), {}).setdefault(int(lx), []).append(value)
    return out
