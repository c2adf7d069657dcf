"""What the report reads from a study directory: the rows each stage wrote.

Every reader returns ``None`` when its file is absent, so a section whose
inputs were not produced (a study stopped after the corpus, an analysis not
run) can say so instead of failing. A file that exists but cannot be parsed is
a :class:`ReportError` naming it.

Files (``DIR`` = the study directory)::

    DIR/tables/corpus.csv                      dualasr.data.stats.STATS_COLUMNS
    DIR/tables/cer.csv                         dualasr.score.rates.RATE_COLUMNS
    DIR/tables/ed_gap.csv                      dualasr.score.ed_gap.GAP_COLUMNS
    DIR/tables/cer_by_speaker.csv              dualasr.score.speakers.SPEAKER_COLUMNS
    DIR/tables/cka_encoder.csv, cka_decoder.csv  dualasr.analysis.analyze.CKA_COLUMNS
    DIR/tables/entanglement.csv                dualasr.analysis.analyze.ENTANGLEMENT_COLUMNS
    DIR/exp/<lang>/<name>/seed<k>/metrics.csv  long format: epoch, step, split, metric, value
                                               (run.json beside it: the run's label)
    DIR/exp/<lang>/<name>/seed<k>/train_summary.json  parameter count (method comparison)
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from dualasr.errors import DualasrError
from dualasr.layout import discover_runs


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


def read_cka(path: Path, columns: tuple[str, ...]) -> list[dict] | None:
    """A CKA or entanglement table of the analyze stage with its numbers as
    numbers (layers and seeds int, values float, empty NaN), as the stage's
    table functions take them; ``None`` when the file does not exist."""
    rows = read_csv(path, columns)
    if rows is None:
        return None
    ints = {"seed", "layer_x", "layer_y", "n"}
    floats = {"cka", "cka_biased", "index", "index_mean_layers", "so_reference", "excess", "encoder_index"}
    try:
        return [{k: int(v) if k in ints else number(v) if k in floats else v for k, v in r.items()} for r in rows]
    except ValueError as e:
        raise ReportError(f"{path}: not a table of the analyze stage ({e})") from None


@dataclass(frozen=True)
class TrainingRun:
    """One trained model's metrics log: ``rows`` keep the CSV's long format
    (``epoch``, ``step``, ``split``, ``metric``, ``value`` as strings)."""

    language: str
    model: str
    label: str
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
    """The ``metrics.csv`` of every run under ``exp_dir``
    (:func:`dualasr.layout.discover_runs`), in table order. The metric-name
    column may be called ``metric`` (dualasr.train.trainer.MetricsLog) or ``key``."""
    runs = []
    for run in discover_runs(exp_dir) if Path(exp_dir).is_dir() else []:
        path = run.dir / "metrics.csv"
        rows = read_csv(path)
        if rows is None:
            continue
        if rows and "metric" not in rows[0] and "key" in rows[0]:
            rows = [{**r, "metric": r["key"]} for r in rows]
        need = ("epoch", "split", "metric", "value")
        if rows and any(c not in rows[0] for c in need):
            raise ReportError(f"{path}: expected columns {', '.join(need)} (has {', '.join(rows[0])})")
        bad = next((i for i, r in enumerate(rows) if not str(r["epoch"]).isdigit()), None)
        if bad is not None:
            raise ReportError(f"{path}: line {bad + 2}: epoch {rows[bad]['epoch']!r} is not an integer")
        info = run.info
        runs.append(TrainingRun(info.language, info.name, info.label, info.seed, path, tuple(rows)))
    return runs
