"""``dualasr score``: score every decoded run of a study directory.

Layout read (``DIR`` = the study directory, :mod:`dualasr.layout`)::

    DIR/data/<lang>/cuts_<split>.jsonl.gz              references (a test split's manifest)
    DIR/exp/<lang>/<name>/seed<k>/run.json             what the run is (outputs, label)
    DIR/exp/<lang>/<name>/seed<k>/hyps_<split>.jsonl   hypotheses (dualasr decode)

What a run is comes from its ``run.json``: its outputs say which outputs must
be scored, and each output of a run is compared with the single-output run of
the same language and seed that has only that output
(:func:`dualasr.layout.baseline_of`); tables show each run by its label.
Every test split a run has decoded (``test``, or ``test_seen`` and
``test_unseen``) is scored on its own: each row carries its ``split``.
Layout written under ``OUT`` (default ``DIR``)::

    OUT/tables/errors.csv   per-utterance error counts (rates.ERROR_COLUMNS)
    OUT/tables/cer.csv|md   CER / WER per model, output, language (Table 2)
    OUT/tables/ed_gap.csv|md  CER gap model - SO per ED bin, CIs, Spearman
    OUT/tables/cer_by_speaker.csv|md  CER per test speaker, model and output
    OUT/figures/ed_gap.png  the gaps per ED bin, with the reference study's

Nothing is skipped silently: a missing output, a missing baseline, an
unpaired seed or an undefined statistic is a NaN cell and a line in
``ScoreResult.notes`` and in the markdown tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dualasr.atomic import atomic_write_text
from dualasr.layout import EXP_DIR, OUTPUTS, Run, RunInfo, baseline_of, discover_runs
from dualasr.score.ed_gap import GapRow, ed_gap_rows, plot_ed_gap, write_gaps
from dualasr.score.rates import (
    OutputScores,
    RateRow,
    ScoreError,
    errors_csv,
    load_references,
    rate_rows,
    score_file,
    write_rates,
)
from dualasr.score.speakers import speaker_rows, write_speaker_rates


def decoded_runs(exp_dir: str | Path, split: str) -> list[Run]:
    """The runs under ``exp_dir`` (:func:`dualasr.layout.discover_runs`) that have
    decoded ``split``."""
    return [r for r in discover_runs(exp_dir) if r.hyps(split).is_file()]


@dataclass
class ScoreResult:
    """Everything ``score_study`` computed: per-utterance scores (one per
    language, model, seed and produced output), Table 2 rows, ED-gap rows, the
    notes explaining every NaN cell, and the files written."""

    scores: list[OutputScores]
    rates: list[RateRow]
    gaps: list[GapRow]
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def score_study(
    study_dir: str | Path,
    out_dir: str | Path | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    *,
    hyps_dir: str | Path | None = None,
    manifests: dict[str, dict[str, str | Path]] | None = None,
    divergence_unit: str = "char",
) -> ScoreResult:
    """Score every decoded run under ``hyps_dir`` (default ``study_dir/exp``) on
    every test split it has hypotheses of, against the split's manifest
    (``manifests[lang][split]``, default ``study_dir/data/<lang>/cuts_<split>.jsonl.gz``;
    with ``manifests`` given, only its splits are scored) and write the tables and figure under ``out_dir``
    (default ``study_dir``). ``bootstrap``: resamples per CI; ``seed``: of the
    bootstrap; ``divergence_unit``: of the ED (config ``text.divergence_unit``)."""
    study_dir = Path(study_dir)
    out_dir = Path(out_dir) if out_dir is not None else study_dir
    hyps_dir = Path(hyps_dir) if hyps_dir is not None else study_dir / EXP_DIR
    every = discover_runs(hyps_dir)
    splits = {(r.info.language, split) for r in every for split in r.decoded_splits()}
    if manifests is not None:
        splits = {(lang, split) for lang, split in splits if split in manifests.get(lang, {})}
    if not splits:
        raise ScoreError(f"{hyps_dir}: no <lang>/<name>/seed<k>/hyps_<split>.jsonl files")
    rate_notes: list[str] = []  # missing outputs: NaN cells of both tables
    gap_notes: list[str] = []  # missing baselines, unpaired seeds, undefined statistics
    scores: list[OutputScores] = []
    rates: list[RateRow] = []
    gaps: list[GapRow] = []
    languages = sorted({lang for lang, _ in splits})
    for lang, split in sorted(splits):
        default = study_dir / "data" / lang / f"cuts_{split}.jsonl.gz"
        manifest = Path((manifests or {}).get(lang, {}).get(split, default))
        refs_by_lang = load_references(manifest, divergence_unit)
        if lang not in refs_by_lang:
            raise ScoreError(f"{manifest}: no {lang} utterances (found {', '.join(refs_by_lang) or 'none'})")
        refs = refs_by_lang[lang]
        mine = [r for r in every if r.info.language == lang and r.hyps(split).is_file()]
        infos = [r.info for r in mine]
        models = {r.info.name: r.info for r in mine}  # run order: baselines first
        by_model: dict[str, dict[str, list[OutputScores]]] = {m: {o: [] for o in OUTPUTS} for m in models}
        for run in mine:
            info = run.info
            for output, s in score_file(run.hyps(split), refs, info.name, info.seed, info.label).items():
                if s is None:
                    if output in info.outputs:
                        rate_notes.append(
                            f"{run.hyps(split)}: {output} is null on every line; "
                            f"{lang} {info.label} {output} is missing (NaN, n=0)"
                        )
                    continue
                by_model[info.name][output].append(s)
                scores.append(s)
        for name, info in models.items():
            for output in info.outputs:
                base = _baseline(name, output, infos, infos)
                own = base is not None and base.name == name  # the SO model the others are compared with
                rates += rate_rows(by_model[name][output], lang, name, output, refs.units(output), info.label,
                                   "" if own or base is None else base.name, split)  # fmt: skip
                if own:
                    continue
                if base is None:
                    gap_notes.append(f"{lang} {output}: no single-output {output} model; the {info.label} gap is NaN (n=0)")
                baseline_runs = by_model[base.name][output] if base else []
                gaps += ed_gap_rows(refs, output, name, by_model[name][output], base.name if base else "SO",
                                    baseline_runs, bootstrap, seed, gap_notes,
                                    (info.label, base.label if base else "SO"))  # fmt: skip
    files = [out_dir / "tables" / "errors.csv"]
    atomic_write_text(files[0], errors_csv(scores), overwrite=True)
    files += write_rates(rates, out_dir, rate_notes)
    files += write_gaps(gaps, out_dir, bootstrap, rate_notes + gap_notes)
    files += write_speaker_rates(speaker_rows(scores), out_dir)
    files.append(plot_ed_gap(gaps, out_dir / "figures" / "ed_gap.png", languages))
    return ScoreResult(scores, rates, gaps, rate_notes + gap_notes, files)


def _baseline(name: str, output: str, runs: list[RunInfo], every: list[RunInfo]) -> RunInfo | None:
    """The baseline of run ``name``'s ``output``, the same for all its seeds
    (:func:`dualasr.layout.baseline_of` per seed); seeds whose baselines differ
    are an error naming them."""
    found = [b for r in runs if r.name == name and (b := baseline_of(r, output, every)) is not None]
    names = {b.name for b in found}
    if len(names) > 1:
        raise ScoreError(f"{name} {output}: its seeds have different baselines ({', '.join(sorted(names))})")
    return found[0] if found else None
