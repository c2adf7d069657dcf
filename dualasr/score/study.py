"""``dualasr score``: score every decoded model of a study directory.

Layout read (``DIR`` = the study directory)::

    DIR/data/<lang>/cuts_<split>.jsonl.gz          references (test manifest)
    DIR/<lang>/<model>/seed<k>/hyps_<split>.jsonl  hypotheses (dualasr decode)

``<model>`` is any name: ``sso`` and ``mso`` are the single-output baselines,
every other model (``do``, ``do_pcgrad``, ...) is compared with them output by
output (surface vs SSO, meaning vs MSO). Layout written under ``OUT``
(default ``DIR``)::

    OUT/tables/errors.csv   per-utterance error counts (errors.ERROR_COLUMNS)
    OUT/tables/cer.csv|md   CER / WER per model, output, language (Table 2)
    OUT/tables/ed_gap.csv|md  CER gap DO - SO per ED bin, CIs, Spearman
    OUT/tables/cer_by_speaker.csv|md  CER per test speaker, model and output
    OUT/figures/ed_gap.png  the gaps per ED bin, with the reference study's

Nothing is skipped silently: a missing output, a missing baseline, an
unpaired seed or an undefined statistic is a NaN cell and a line in
``ScoreResult.notes`` and in the markdown tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from dualasr.atomic import atomic_write_text
from dualasr.score.ed_gap import GapRow, ed_gap_rows, plot_ed_gap, write_gaps
from dualasr.score.errors import (
    BASELINE,
    EXPECTED_OUTPUTS,
    OUTPUTS,
    OutputScores,
    RateRow,
    ScoreError,
    errors_csv,
    load_references,
    model_order,
    rate_rows,
    score_file,
    write_rates,
)
from dualasr.score.speakers import speaker_rows, write_speaker_rates
from dualasr.text.normalize import LANGUAGES


@dataclass(frozen=True)
class HypothesisFile:
    """One decoded run: ``DIR/<language>/<model>/seed<seed>/hyps_<split>.jsonl``."""

    language: str
    model: str
    seed: int
    path: Path


def discover_hypotheses(hyps_dir: str | Path, split: str = "test") -> list[HypothesisFile]:
    """Every ``<lang>/<model>/seed<k>/hyps_<split>.jsonl`` under ``hyps_dir``,
    sorted by language, model, seed. A language directory that is not a known
    language, or a seed directory not named ``seed<integer>``, is an error."""
    hyps_dir = Path(hyps_dir)
    found = []
    for path in sorted(hyps_dir.glob(f"*/*/*/hyps_{split}.jsonl")):
        seed_dir, model_dir, lang_dir = path.parent, path.parent.parent, path.parent.parent.parent
        if lang_dir.name == "data":  # the manifests' directory, not a language
            continue
        if lang_dir.name not in LANGUAGES:
            raise ScoreError(f"{path}: {lang_dir.name!r} is not a language ({', '.join(LANGUAGES)})")
        m = re.fullmatch(r"seed(\d+)", seed_dir.name)
        if not m:
            raise ScoreError(f"{path}: the run directory must be named seed<integer>, not {seed_dir.name!r}")
        found.append(HypothesisFile(lang_dir.name, model_dir.name, int(m.group(1)), path))
    return sorted(found, key=lambda h: (h.language, h.model, h.seed))


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
    manifests: dict[str, str | Path] | None = None,
    split: str = "test",
    divergence_unit: str = "char",
) -> ScoreResult:
    """Score every run under ``hyps_dir`` (default ``study_dir``) against the test
    manifests (default ``study_dir/data/<lang>/cuts_<split>.jsonl.gz``, or
    ``manifests[lang]``) and write the tables and figure under ``out_dir``
    (default ``study_dir``). ``bootstrap``: resamples per CI; ``seed``: of the
    bootstrap; ``divergence_unit``: of the ED (config ``text.divergence_unit``)."""
    study_dir = Path(study_dir)
    out_dir = Path(out_dir) if out_dir is not None else study_dir
    runs = discover_hypotheses(hyps_dir if hyps_dir is not None else study_dir, split)
    if not runs:
        raise ScoreError(f"{hyps_dir or study_dir}: no <lang>/<model>/seed<k>/hyps_{split}.jsonl files")
    rate_notes: list[str] = []  # missing outputs: NaN cells of both tables
    gap_notes: list[str] = []  # missing baselines, unpaired seeds, undefined statistics
    scores: list[OutputScores] = []
    rates: list[RateRow] = []
    gaps: list[GapRow] = []
    languages = sorted({r.language for r in runs})
    for lang in languages:
        default = study_dir / "data" / lang / f"cuts_{split}.jsonl.gz"
        manifest = Path((manifests or {}).get(lang, default))
        refs_by_lang = load_references(manifest, divergence_unit)
        if lang not in refs_by_lang:
            raise ScoreError(f"{manifest}: no {lang} utterances (found {', '.join(refs_by_lang) or 'none'})")
        refs = refs_by_lang[lang]
        by_model: dict[str, dict[str, list[OutputScores]]] = {}
        for run in (r for r in runs if r.language == lang):
            outputs = score_file(run.path, refs, run.model, run.seed)
            by_model.setdefault(run.model, {o: [] for o in OUTPUTS})
            for output, s in outputs.items():
                if s is None:
                    if output in EXPECTED_OUTPUTS.get(run.model, OUTPUTS):
                        rate_notes.append(
                            f"{run.path}: {output} is null on every line; "
                            f"{lang} {run.model} {output} is missing (NaN, n=0)"
                        )
                    continue
                by_model[run.model][output].append(s)
                scores.append(s)
        for model in model_order(by_model):
            for output in OUTPUTS:
                produced = by_model[model][output]
                if not produced and output not in EXPECTED_OUTPUTS.get(model, OUTPUTS):
                    continue  # an SSO model has no meaning output: not a row
                rates += rate_rows(produced, lang, model, output, refs.units(output))
        for model in model_order(set(by_model) - set(BASELINE.values())):
            for output in OUTPUTS:
                baseline = BASELINE[output]
                if baseline not in by_model or not by_model[baseline][output]:
                    gap_notes.append(
                        f"{lang} {output}: no {baseline} hypotheses; the {model} − {baseline} gap is NaN (n=0)"
                    )
                baseline_runs = by_model.get(baseline, {}).get(output, [])
                runs_x = by_model[model][output]
                gaps += ed_gap_rows(refs, output, model, runs_x, baseline_runs, bootstrap, seed, gap_notes)
    files = [out_dir / "tables" / "errors.csv"]
    atomic_write_text(files[0], errors_csv(scores), overwrite=True)
    files += write_rates(rates, out_dir, rate_notes)
    files += write_gaps(gaps, out_dir, bootstrap, rate_notes + gap_notes)
    files += write_speaker_rates(speaker_rows(scores), out_dir)
    files.append(plot_ed_gap(gaps, out_dir / "figures" / "ed_gap.png", languages))
    return ScoreResult(scores, rates, gaps, rate_notes + gap_notes, files)
