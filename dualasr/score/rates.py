"""Error rates of dual-output hypotheses: inputs, per-utterance counts, Table 2.

Hypotheses file (``hyps_<split>.jsonl``, written by ``dualasr decode``): one JSON
object per line and one line per utterance of the test set::

    {"id": "en_000123", "surface": "i sink so", "meaning": "i think so", "scores": {...}}

``surface`` and ``meaning`` hold the model's best hypothesis as raw text (it is
normalised here) or ``null`` when the model has no such output: an SSO model
fills only ``surface``, an MSO model only ``meaning``, a DO model both. An
output is null on every line or on none (a half-filled output would be scored
on a subset, so it is an error); ``""`` is an empty hypothesis (all deletions).
Other keys (``scores``: decoder scores and the like) are kept by decode for
inspection and not read here. Every test-set id must appear exactly once:
missing, extra and duplicate ids are errors naming the file.

References come from the test manifest (``cuts_<split>.jsonl.gz``): per
utterance its language, surface and meaning, and its divergence (ED,
:func:`~dualasr.data.manifest.cut_divergence`).

Counting. Reference and hypothesis both go through the toolkit's normaliser
(:func:`~dualasr.text.normalize.normalize`). Substitutions, deletions and
insertions come from jiwer's alignments (rapidfuzz Levenshtein opcodes), one
batched call per output; errors = S + D + I. Characters are counted *including
spaces* (jiwer's ``cer_default``: every character of the normalised text,
single spaces between words); words are whitespace-separated tokens (for
Korean, eojeol). A cut carrying ``surface_phones`` (phone-annotated corpora
such as L2-ARCTIC) has its surface compared as ARPAbet phones
(:func:`~dualasr.text.normalize.normalize_phones`, stress stripped): its
"character" counts are phone counts, its unit is ``phone`` and the rate is a
phone error rate (PER); it has no word rate (NaN).

Rates are corpus-level and in percent: ``100 * sum(errors) / sum(ref length)``
over the test set, not the mean of per-utterance rates (a short utterance would
weigh as much as a long one). Several seeds give mean ± sample standard
deviation (``ddof=1``) of the per-seed rates.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np

from dualasr.atomic import atomic_write_text
from dualasr.data.manifest import cut_divergence, load_manifest, supervision
from dualasr.data.stats import split_of
from dualasr.errors import DualasrError
from dualasr.layout import OUTPUTS, default_label
from dualasr.reference import CITATION, REFERENCE_CER
from dualasr.tables import Table, markdown
from dualasr.text.normalize import normalize, normalize_phones


class ScoreError(DualasrError, ValueError):
    """Hypotheses or references that cannot be scored; the message names the file."""


# ---------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class References:
    """Normalised references of one language's test set, in manifest order.

    ``ed``: ``(n,)`` divergence of each utterance; ``surface_unit``: ``"char"``,
    or ``"phone"`` for a cut whose surface is a phone string (``surface`` then
    holds the space-joined normalised phones); ``speakers``: each utterance's
    speaker ("unknown" where the manifest has none); ``split``: the test split
    the manifest holds (``cuts_<split>.jsonl.gz``).
    """

    language: str
    manifest: Path
    ids: tuple[str, ...]
    surface: tuple[str, ...]
    meaning: tuple[str, ...]
    ed: np.ndarray
    surface_unit: tuple[str, ...]
    speakers: tuple[str, ...]
    split: str = "test"

    def __len__(self) -> int:
        return len(self.ids)

    def units(self, output: str) -> tuple[str, ...]:
        """Unit ("char" or "phone") each utterance's ``output`` is counted in."""
        return self.surface_unit if output == "surface" else ("char",) * len(self.ids)


def load_references(manifest: str | Path, divergence_unit: str = "char") -> dict[str, References]:
    """The references of a test manifest, per language (a manifest may hold several)."""
    manifest = Path(manifest)
    rows: dict[str, list[tuple[str, str, str, int, str, str]]] = {}
    for cut in load_manifest(manifest, check_audio=False):
        sup = supervision(cut)
        custom = sup.custom or {}
        lang = sup.language
        if custom.get("surface_phones") is not None:
            surface, unit = " ".join(normalize_phones(custom["surface_phones"])), "phone"
        else:
            surface, unit = normalize(custom["surface"], lang), "char"
        meaning = normalize(custom["meaning"], lang)
        ed = cut_divergence(cut, divergence_unit)
        rows.setdefault(lang, []).append((cut.id, surface, meaning, ed, unit, sup.speaker or "unknown"))
    out = {}
    for lang, items in sorted(rows.items()):
        ids, surface, meaning, ed, unit, speakers = zip(*items, strict=True)
        out[lang] = References(lang, manifest, ids, surface, meaning, np.array(ed, dtype=np.int64), unit, speakers,
                               split_of(manifest))  # fmt: skip
    return out


def read_hypotheses(path: str | Path) -> dict[str, dict[str, str | None]]:
    """``id -> {"surface": text or None, "meaning": text or None}`` of a hypotheses file.

    Errors (bad JSON, missing id, a non-string hypothesis, a duplicate id) name
    ``file:line``.
    """
    path = Path(path)
    if not path.is_file():
        raise ScoreError(f"{path}: hypotheses file not found")
    hyps: dict[str, dict[str, str | None]] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ScoreError(f"{where}: invalid JSON ({e.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                raise ScoreError(f'{where}: expected an object with a string "id"')
            for output in OUTPUTS:
                if row.get(output) is not None and not isinstance(row[output], str):
                    raise ScoreError(f"{where}: {output!r} must be a string or null")
            if row["id"] in hyps:
                raise ScoreError(f"{where}: duplicate id {row['id']!r}")
            hyps[row["id"]] = {output: row.get(output) for output in OUTPUTS}
    return hyps


def check_ids(hyps: dict, refs: References, path: str | Path) -> None:
    """Every test-set id once, nothing else: scoring a subset would go unnoticed."""
    missing = [i for i in refs.ids if i not in hyps]
    extra = sorted(set(hyps) - set(refs.ids))
    problems = []
    if missing:
        problems.append(f"{len(missing)} of {len(refs)} test-set id(s) missing (e.g. {missing[0]!r})")
    if extra:
        problems.append(f"{len(extra)} id(s) not in the {refs.language} test set {refs.manifest} (e.g. {extra[0]!r})")
    if problems:
        raise ScoreError(f"{path}: " + "; ".join(problems))


# -------------------------------------------------------------------- counting


@dataclass(frozen=True)
class OutputScores:
    """Per-utterance error counts of one output of one model run on one test set.

    Arrays are ``(n,)`` and aligned with ``refs.ids``. ``ref_chars`` /
    ``char_errors``: characters including spaces (phones where ``unit`` is
    "phone"); ``ref_words`` / ``word_errors``: whitespace words, NaN for phone
    units.
    """

    model: str
    seed: int
    output: str
    refs: References
    unit: np.ndarray  # (n,) "char" | "phone"
    ref_chars: np.ndarray  # (n,) int
    char_errors: np.ndarray  # (n,) int
    ref_words: np.ndarray  # (n,) float, NaN for phone units
    word_errors: np.ndarray  # (n,) float, NaN for phone units
    label: str = ""  # how tables show the model (its RunInfo label)

    def __post_init__(self):
        if not self.label:
            object.__setattr__(self, "label", default_label(self.model))

    @property
    def language(self) -> str:
        return self.refs.language

    @property
    def split(self) -> str:
        return self.refs.split


def _lengths_and_errors(alignments: Sequence[Sequence[jiwer.AlignmentChunk]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-sentence (reference length, S + D + I) from jiwer's alignment chunks."""
    ref_len, errors = np.zeros(len(alignments), np.int64), np.zeros(len(alignments), np.int64)
    for i, chunks in enumerate(alignments):
        for c in chunks:
            ref_len[i] += c.ref_end_idx - c.ref_start_idx
            if c.type == "insert":
                errors[i] += c.hyp_end_idx - c.hyp_start_idx
            elif c.type != "equal":  # substitute or delete
                errors[i] += c.ref_end_idx - c.ref_start_idx
    return ref_len, errors


def count_errors(refs: Sequence[str], hyps: Sequence[str], unit: str = "char") -> tuple[np.ndarray, np.ndarray]:
    """``(ref_length, errors)``, each ``(n,)`` int, of normalised sentence pairs.

    ``unit``: "char" (characters, spaces included) or "word"/"phone"
    (whitespace tokens).
    """
    if not refs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    process = jiwer.process_characters if unit == "char" else jiwer.process_words
    return _lengths_and_errors(process(list(refs), list(hyps)).alignments)


def score_output(
    refs: References, hyps: Sequence[str], model: str, seed: int, output: str, label: str = ""
) -> OutputScores:
    """Count the errors of ``hyps`` (raw text, aligned with ``refs.ids``) on ``output``."""
    units = np.array(refs.units(output))
    ref_text = refs.surface if output == "surface" else refs.meaning
    n = len(refs)
    ref_chars, char_errors = np.zeros(n, np.int64), np.zeros(n, np.int64)
    ref_words, word_errors = np.full(n, np.nan), np.full(n, np.nan)
    for unit in ("char", "phone"):
        idx = np.flatnonzero(units == unit)
        if not len(idx):
            continue
        if unit == "phone":
            hyp = [" ".join(normalize_phones(hyps[i])) for i in idx]
        else:
            hyp = [normalize(hyps[i], refs.language) for i in idx]
        ref = [ref_text[i] for i in idx]
        ref_chars[idx], char_errors[idx] = count_errors(ref, hyp, unit)
        if unit == "char":
            ref_words[idx], word_errors[idx] = count_errors(ref, hyp, "word")
    return OutputScores(model, seed, output, refs, units, ref_chars, char_errors, ref_words, word_errors, label)


def score_file(
    path: str | Path, refs: References, model: str, seed: int, label: str = ""
) -> dict[str, OutputScores | None]:
    """Scores of each output of a hypotheses file; ``None`` for an output that is
    null on every line (the model has no such output)."""
    hyps = read_hypotheses(path)
    check_ids(hyps, refs, path)
    out: dict[str, OutputScores | None] = {}
    for output in OUTPUTS:
        texts = [hyps[i][output] for i in refs.ids]
        n_null = sum(t is None for t in texts)
        if n_null == len(texts):
            out[output] = None
        elif n_null:
            raise ScoreError(
                f"{path}: {output!r} is null for {n_null} of {len(texts)} utterances; "
                "an output is either produced for every utterance or null on every line"
            )
        else:
            out[output] = score_output(refs, texts, model, seed, output, label)
    return out


def corpus_rate(errors: np.ndarray, ref_len: np.ndarray) -> float:
    """``100 * sum(errors) / sum(ref_len)`` (percent); NaN when there is no reference."""
    total = float(np.sum(ref_len))
    return 100.0 * float(np.sum(errors)) / total if total > 0 else math.nan


# ---------------------------------------------------------------------- tables


@dataclass(frozen=True)
class RateRow:
    """Corpus-level CER and WER (%) of one output of one model on one language,
    over its seeds. ``n``: utterances per seed (0 when the output is missing);
    ``cer`` is a phone error rate when ``unit`` is "phone" (``wer`` is then NaN);
    ``reference``: the reference study's CER, when it reports one; ``label``:
    how tables show the model (default: :func:`~dualasr.layout.default_label`)."""

    language: str
    model: str
    output: str
    unit: str
    seeds: tuple[int, ...]
    n: int
    cer: float
    cer_std: float
    wer: float
    wer_std: float
    cer_per_seed: tuple[float, ...]
    wer_per_seed: tuple[float, ...]
    reference: float | None
    label: str = ""
    baseline: str = ""  # the SO model this output is compared with ("" for that SO model itself)
    split: str = "test"  # the test split scored

    def __post_init__(self):
        if not self.label:
            object.__setattr__(self, "label", default_label(self.model))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; NaN for fewer than 2 values)."""
    if not len(values):
        return math.nan, math.nan
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else math.nan


def rate_rows(
    runs: Sequence[OutputScores], language: str, model: str, output: str, units: Iterable[str], label: str = "",
    baseline: str = "", split: str = "test",
) -> list[RateRow]:
    """One :class:`RateRow` per unit of the seeds ``runs`` of (language, model, output).

    ``runs`` empty means the output is missing: rows with ``n=0`` and NaN rates.
    """
    rows = []
    for unit in sorted(set(units)):
        cer, wer, seeds, n = [], [], [], 0
        for run in sorted(runs, key=lambda r: r.seed):
            m = run.unit == unit
            n = int(m.sum())
            seeds.append(run.seed)
            cer.append(corpus_rate(run.char_errors[m], run.ref_chars[m]))
            wer.append(corpus_rate(run.word_errors[m], run.ref_words[m]) if unit == "char" else math.nan)
        reference = REFERENCE_CER.get((language, model, output)) if unit == "char" else None
        rows.append(
            RateRow(language, model, output, unit, tuple(seeds), n, *mean_std(cer), *mean_std(wer),
                    tuple(cer), tuple(wer), reference, label, baseline, split)
        )  # fmt: skip
    return rows


RATE_COLUMNS = (
    "split", "language", "model", "label", "baseline", "output", "unit", "n_seeds", "seeds", "n", "cer", "cer_std", "wer", "wer_std",
    "cer_per_seed", "wer_per_seed", "reference_cer",
)  # fmt: skip


def fmt_number(x: float | int | None, digits: int = 4) -> str:
    """CSV cell: integers as is, NaN/None empty, floats rounded."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{x:.{digits}f}"


def rates_csv(rows: Sequence[RateRow]) -> str:
    """``tables/cer.csv``: one row per test split, language, model, output and unit (:data:`RATE_COLUMNS`)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(RATE_COLUMNS)
    for r in rows:
        w.writerow([
            r.split, r.language, r.model, r.label, r.baseline, r.output, r.unit, len(r.seeds), ";".join(map(str, r.seeds)), r.n,
            fmt_number(r.cer), fmt_number(r.cer_std), fmt_number(r.wer), fmt_number(r.wer_std),
            ";".join(map(fmt_number, r.cer_per_seed)), ";".join(map(fmt_number, r.wer_per_seed)),
            fmt_number(r.reference),
        ])  # fmt: skip
    return buf.getvalue()


def _floats(cell: str) -> tuple[float, ...]:
    return tuple(float(x or "nan") for x in cell.split(";")) if cell else ()


def rate_row(cells: dict[str, str]) -> RateRow:
    """A row of ``tables/cer.csv`` read back (empty numbers are NaN)."""
    return RateRow(
        cells["language"], cells["model"], cells["output"], cells["unit"],
        tuple(int(x) for x in cells["seeds"].split(";") if x), int(cells["n"]),
        float(cells["cer"] or "nan"), float(cells["cer_std"] or "nan"),
        float(cells["wer"] or "nan"), float(cells["wer_std"] or "nan"),
        _floats(cells["cer_per_seed"]), _floats(cells["wer_per_seed"]),
        float(cells["reference_cer"]) if cells["reference_cer"] else None, cells["label"], cells["baseline"],
        cells["split"],
    )  # fmt: skip


def fmt_rate(mean: float, std: float, n: int) -> str:
    """Markdown cell: "12.34 ± 0.56", "12.34" for one seed, "—" when missing."""
    if n == 0 or math.isnan(mean):
        return "—"
    return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


RATES_INTRO = (
    "Corpus-level rates: 100 × total errors / total reference length (characters "
    "including spaces; words split on whitespace), after the toolkit's normalisation. "
    "Mean ± sample std (ddof=1) over seeds when there are several. "
    f"*ref.*: {CITATION}, Table 2 (Conformer SO = SSO surface / MSO meaning; Conformer DO). "
    "— = the model has no such output."
)


def rate_tables(rows: Sequence[RateRow]) -> tuple[Table, Table]:
    """Table 2's layout, rows = models (in the rows' order, shown by label),
    columns = language × output with the reference study's CER beside ours; then
    the same for WER (no reference). With several test splits each language
    × output has a column per split, side by side, named after the split."""
    splits = sorted({r.split for r in rows})
    columns = sorted({(r.language, r.output, r.unit, r.split) for r in rows},
                     key=lambda c: (c[0], OUTPUTS.index(c[1]), c[2], c[3]))  # fmt: skip
    models = list(dict.fromkeys((r.model, r.label) for r in rows))
    cell = {(r.model, r.language, r.output, r.unit, r.split): r for r in rows}

    def name(lang: str, output: str, unit: str, split: str, metric: str) -> str:
        return f"{lang} {output} {'PER' if unit == 'phone' else metric}" + (f" {split}" if len(splits) > 1 else "")

    cer = Table(["model"] + [h for c in columns for h in (name(*c, "CER"), "ref.")], caption="CER (%) per model and output")
    for m, label in models:
        line = [label]
        for c in columns:
            r = cell.get((m, *c))
            line.append(fmt_rate(r.cer, r.cer_std, r.n) if r else "—")
            line.append(f"{r.reference:.2f}" if r and r.reference is not None else "")
        cer.add(line)
    word_columns = [c for c in columns if c[2] == "char"]
    wer = Table(["model"] + [name(*c, "WER") for c in word_columns], caption="WER (%) per model and output")
    for m, label in models:
        wer.add([label] + [fmt_rate(r.wer, r.wer_std, r.n) if (r := cell.get((m, *c))) else "—" for c in word_columns])
    return cer, wer


def rates_markdown(rows: Sequence[RateRow], notes: Sequence[str] = ()) -> str:
    """``tables/cer.md``: :func:`rate_tables` under a heading, then the notes."""
    n_seeds = sorted({len(r.seeds) for r in rows if r.n})
    cer, wer = rate_tables(rows)
    lines = [
        "# Error rates (%), test set(s)", "", RATES_INTRO + f" Seeds per model: {'/'.join(map(str, n_seeds)) or '-'}.",
        "", "## CER", "", markdown(cer), "", "## WER", "", markdown(wer),
    ]  # fmt: skip
    return "\n".join(lines + notes_markdown(notes)) + "\n"


def notes_markdown(notes: Sequence[str]) -> list[str]:
    """The "## Notes" list a stage's ``.md`` ends with (the report shows the same notes)."""
    return ["", "## Notes", ""] + [f"- {n}" for n in notes] if notes else []


def read_notes(path: str | Path) -> list[str]:
    """The "## Notes" list of a stage's ``.md`` (empty when the file or the list is absent)."""
    path = Path(path)
    if not path.is_file():
        return []
    _, sep, notes = path.read_text(encoding="utf-8").partition("\n## Notes\n")
    return [ln[2:].strip() for ln in notes.splitlines() if ln.startswith("- ")] if sep else []


ERROR_COLUMNS = (
    "split", "id", "language", "speaker", "model", "output", "seed", "ed", "unit", "ref_chars", "ref_words", "char_errors", "word_errors",
)  # fmt: skip


def errors_csv(scores: Iterable[OutputScores]) -> str:
    """Per-utterance error table (:data:`ERROR_COLUMNS`); word columns are empty
    for phone units, "chars" are phones there."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(ERROR_COLUMNS)
    for s in scores:
        refs = s.refs
        for i, uid in enumerate(refs.ids):
            w.writerow([
                refs.split, uid, refs.language, refs.speakers[i], s.model, s.output, s.seed, int(refs.ed[i]), s.unit[i],
                int(s.ref_chars[i]), fmt_number(s.ref_words[i], 0), int(s.char_errors[i]),
                fmt_number(s.word_errors[i], 0),
            ])  # fmt: skip
    return buf.getvalue()


def write_rates(rows: Sequence[RateRow], out_dir: str | Path, notes: Sequence[str] = ()) -> list[Path]:
    """Write ``tables/cer.csv`` and ``tables/cer.md`` under ``out_dir`` (overwriting)."""
    tables = Path(out_dir) / "tables"
    atomic_write_text(tables / "cer.csv", rates_csv(rows), overwrite=True)
    atomic_write_text(tables / "cer.md", rates_markdown(rows, notes), overwrite=True)
    return [tables / "cer.csv", tables / "cer.md"]
