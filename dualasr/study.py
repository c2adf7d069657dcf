"""``dualasr study``: every stage in order, each reading and writing files in
the study directory, so a stage can be re-run alone and a finished one is
skipped on re-run while its inputs are unchanged (:mod:`dualasr.rundir`). One
process at a time writes a study directory, and one at a time each ``exp/``
and ``lm/`` run directory in it.

Layout of ``DIR``::

    data/<lang>/cuts_<split>.jsonl.gz      corpus manifests (synth; or a prepared corpus's)
    data/<lang>/fbank/                     cached features + CMVN
    exp/<lang>/<model>/seed<k>/            one trained variant of study.models: model.pt, run.json,
                                           metrics.csv, tokens_*.json, hyps_<split>.jsonl, *.trn
    lm/<lang>/<output>/lm.pt               language models fused in decoding (decode.lm_weight)
    tables/corpus.csv|md                   Table 1 (corpus statistics)
    tables/cer.*, tables/ed_gap.*          Table 2 and the ED-gap table (Figure 2), per test split
    tables/mdd_<lang>_<model>_seed<k>.*    MDD, for phone-annotated corpora
    figures/ed_gap.png
    tables/cka_encoder.*, tables/cka_decoder.*, tables/entanglement.*
                                           layer-wise CKA (Tables 3, 4) and entanglement index
    figures/cka_encoder.png, figures/cka_decoder.png
    analysis/<lang>/seed<k>.json           cache of the analyze stage
    figures/training.png                   training curves (report stage)
    report.html, report.md                 the report: every table, figure and finding
    corpora.json                           language -> corpus directory used
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import torch

from dualasr.atomic import atomic_write_text
from dualasr.config import Config, model_config, model_label, train_config
from dualasr.data.features import compute_features
from dualasr.data.manifest import ManifestError
from dualasr.data.stats import corpus_stats, format_table, write_stats
from dualasr.data.synth.corpus import build_corpus, describe
from dualasr.layout import (
    CORPORA_FILE,
    TRAIN_SPLITS,
    manifest_path,
    read_corpora,
    run_dir,
    test_splits,
)
from dualasr.rundir import locked

STAGES = ("corpus", "score", "analyze", "report")  # where `until` may stop; each includes the ones before


def analysed_models(config: Config) -> list[str]:
    """The variants the CKA analysis compares: frame-level CKA needs the same
    frames, and pretrained encoders give 20 ms frames where the Conformer gives
    40 ms, so where the study has Conformer variants the pretrained ones are
    left out; a whole Whisper model (its own decoder, Whisper tokens) always is."""
    pretrained = {m: model_config(config, m).pretrained for m in config.study.models}
    if any(p is None for p in pretrained.values()):
        return [m for m, p in pretrained.items() if p is None]
    return [m for m, p in pretrained.items() if not p.whole]


def check_pretrained_extra(config: Config) -> None:
    """Before any work: a variant with a pretrained model needs the optional
    extra; without it, an error naming the variants and the install command."""
    needing = [m for m in config.study.models if model_config(config, m).pretrained is not None]
    if needing:
        from dualasr.model.pretrained import require_transformers

        require_transformers(f"study.models {', '.join(needing)} (pretrained models)")


def corpus_dirs(config: Config, out: Path, allow_fewer_voices: bool, progress: bool, echo) -> dict[str, Path]:
    """Language -> manifest directory: the configured prepared corpora, or the
    synthetic corpus built under ``out/data``."""
    if config.data.corpora:
        for lang, d in config.data.corpora.items():
            missing = [s for s in TRAIN_SPLITS if not manifest_path(d, s).exists()]
            if missing:
                raise ManifestError(f"data.corpora.{lang}: {d} lacks cuts_{{{','.join(missing)}}}.jsonl.gz")
            if not test_splits(d):
                raise ManifestError(f"data.corpora.{lang}: {d} has no test split (cuts_test*.jsonl.gz)")
        return {lang: Path(d) for lang, d in config.data.corpora.items()}
    for report in build_corpus(config, out / "data", allow_fewer_voices=allow_fewer_voices, progress=progress):
        echo(describe(report))
    return {lang: out / "data" / lang for lang in config.synth.languages}


def run_study(
    config: Config,
    out: str | Path,
    allow_fewer_voices: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    until: str = STAGES[-1],
) -> Path:
    """Corpus, statistics, then per language and seed: train every variant of ``study.models``, decode
    each test split; then score (with MDD for phone-annotated corpora); then analyze
    (layer-wise CKA, entanglement index); then the report. ``until`` names the last stage
    (:data:`STAGES`): ``"corpus"`` stops after the corpus and its statistics,
    ``"score"`` before the analysis, ``"analyze"`` before the report
    (``report.html``, :mod:`dualasr.report`). Returns the study directory."""
    if until not in STAGES:
        raise ValueError(f"until must be one of {STAGES}, got {until!r}")
    check_pretrained_extra(config)
    with locked(out):
        return _run_study(config, Path(out), allow_fewer_voices, progress, echo, until)


def _run_study(config: Config, out: Path, allow_fewer_voices: bool, progress: bool, echo, until: str) -> Path:
    data = corpus_dirs(config, out, allow_fewer_voices, progress, echo)
    corpora = {lang: str(d.resolve()) for lang, d in data.items()}
    atomic_write_text(out / CORPORA_FILE, json.dumps(corpora, indent=1), overwrite=True)
    stats = corpus_stats(list(data.values()), unit=config.text.divergence_unit)
    write_stats(stats, out)
    echo(format_table(stats))
    if until == "corpus":
        return out

    tests = {lang: test_splits(data_dir) for lang, data_dir in data.items()}
    fbanks = {lang: compute_features(data_dir, (*TRAIN_SPLITS, *tests[lang]), progress=progress,
                                     skip_invalid=config.data.skip_invalid)
              for lang, data_dir in data.items()}  # fmt: skip
    train_seconds = {lang: stats[lang].seconds["train"] for lang in data if lang in stats}
    lms = lm_jobs(config, out, fbanks)
    run_model_jobs(lms, config, progress, echo)
    run_model_jobs(model_jobs(config, out, fbanks, train_seconds, lms, tests), config, progress, echo)

    for path in score_all(out, bootstrap=1000, seed=config.seed, divergence_unit=config.text.divergence_unit):
        if path.suffix == ".md":
            echo(path.read_text())
    if until == "score":
        return out

    from dualasr.analysis.analyze import analyze_study

    analysed = analysed_models(config)
    if len(analysed) < len(config.study.models):
        echo("analyze: pretrained variants left out of the CKA comparison (other frames than the Conformer's, "
             "or a whole Whisper model): " + ", ".join(m for m in config.study.models if m not in analysed))  # fmt: skip
    if analysed:
        analysis = analyze_study(out, models=analysed, seeds=config.study.seeds, echo=echo)
        echo((out / "tables" / "entanglement.md").read_text())
        echo(f"analyze: wrote {', '.join(str(f) for f in analysis.files)}")
    else:  # analyze_study reads an empty list as "every run found"; the report goes without CKA tables
        echo("analyze: skipped, no variant the CKA analysis can compare")
    if until == "analyze":
        return out

    from dualasr.report import build_report

    echo(f"report: {build_report(out).html}")
    return out


@dataclass(frozen=True)
class ModelJob:
    """Train one model of the study and decode each of its test splits."""

    lang: str
    seed: int  # the study seed (the model trains from model_seed(seed, name))
    name: str  # the variant, a key of study.models
    fbank: Path  # the language's feature directory
    exp: Path
    lms: tuple[tuple[str, Path], ...] = ()  # (output, lm.pt) fused in decoding
    test_splits: tuple[str, ...] = ("test",)  # decoded, each into hyps_<split>.jsonl

    @property
    def label(self) -> str:
        return f"{self.lang}/{self.name}/seed{self.seed}"


@dataclass(frozen=True)
class LMJob:
    """Train the language model of one output of one language (shallow fusion)."""

    lang: str
    output: str
    fbank: Path
    exp: Path

    @property
    def label(self) -> str:
        return f"{self.lang}/lm-{self.output}"

    @property
    def path(self) -> Path:
        from dualasr.train.lm import LM_FILE

        return self.exp / LM_FILE


def lm_jobs(config: Config, out: Path, fbanks: dict[str, Path]) -> list[LMJob]:
    """One LM per language and output that ``decode.lm_weight`` fuses (weight > 0)
    and some study model produces; trained once and shared by every variant."""
    produced = {o for name in config.study.models for o in model_config(config, name).outputs}
    outputs = [o for o, w in sorted(config.decode.lm_weight.items()) if w > 0 and o in produced]
    return [LMJob(lang, o, fbank, out / "lm" / lang / o) for lang, fbank in fbanks.items() for o in outputs]


def model_jobs(
    config: Config, out: Path, fbanks: dict[str, Path], train_seconds: dict[str, float],
    lms: list[LMJob] = (), tests: dict[str, tuple[str, ...]] | None = None,
) -> list[ModelJob]:  # fmt: skip
    """Every language x seed x variant of the study, longest first (by training
    audio x epochs, then dual-output with two decoders before SO), so that with
    several jobs at once the last to finish is a short one. ``train_seconds``:
    training audio per language, from the corpus statistics (Table 1); ``lms``:
    the language models each language's decoding fuses; ``tests``: each
    language's test splits (default: ``test``)."""
    fused = {lang: tuple((j.output, j.path) for j in lms if j.lang == lang) for lang in fbanks}
    jobs = [
        ModelJob(lang, seed, name, fbank, run_dir(out, lang, name, seed), fused[lang],
                 (tests or {}).get(lang, ("test",)))  # fmt: skip
        for lang, fbank in fbanks.items()
        for seed in config.study.seeds
        for name in config.study.models
    ]
    def work(j: ModelJob) -> tuple[float, int]:
        audio = train_seconds.get(j.lang, 0.0) * train_config(config, j.lang, j.name).epochs
        return -audio, -len(model_config(config, j.name).outputs)

    return sorted(jobs, key=work)


def _worker_setup(label: str, threads: int | None) -> None:
    if threads is not None:
        torch.set_num_threads(threads)
        # Several jobs log at once: every line names its job.
        logging.basicConfig(level=logging.INFO, format=f"%(levelname)s [{label}] %(name)s: %(message)s", force=True)


def _mtimes(paths: tuple[Path, ...]) -> list[int | None]:
    return [p.stat().st_mtime_ns if p.exists() else None for p in paths]


def run_lm_job(job: LMJob, config: Config, progress: bool = True, threads: int | None = None) -> str:
    """Train one language model (an ``lm.pt`` of the same inputs is kept); returns a line for the log."""
    from dualasr.train.lm import train_lm

    _worker_setup(job.label, threads)
    before = _mtimes((job.path,))
    start = time.monotonic()
    try:
        with locked(job.exp):
            train_lm(job.fbank / "train.jsonl.gz", job.fbank / "dev.jsonl.gz", job.output, job.exp,
                     config.lm, config.text, seed=config.seed)  # fmt: skip
    except Exception as e:
        e.add_note(f"in study job {job.label} ({job.exp})")
        raise
    if None not in before and _mtimes((job.path,)) == before:
        return f"{job.label}: already trained, skipped ({job.exp})"
    return f"{job.label}: trained in {time.monotonic() - start:.0f} s ({job.exp})"


def run_model_job(job: ModelJob, config: Config, progress: bool = True, threads: int | None = None) -> str:
    """Train and decode one model (a ``model.pt`` and hypotheses of the same
    inputs are kept); returns a line for the log. ``threads``: run in a worker
    process of :func:`run_model_jobs`, with that many torch threads."""
    from dualasr.decode.run import decode, hyps_file
    from dualasr.model.checkpoint import MODEL_FILE
    from dualasr.train.trainer import train

    _worker_setup(job.label, threads)
    outputs = (job.exp / MODEL_FILE, *(hyps_file(job.exp, split) for split in job.test_splits))
    before = _mtimes(outputs)
    start = time.monotonic()
    try:
        with locked(job.exp):
            cmvn = json.loads((job.fbank / "cmvn.json").read_text())
            model = train(
                model_config(config, job.name), train_config(config, job.lang, job.name), job.fbank / "train.jsonl.gz",
                job.fbank / "dev.jsonl.gz", cmvn, job.exp, seed=job.seed, text=config.text,
                progress=progress, data=config.data, name=job.name, label=model_label(config, job.name),
            )  # fmt: skip
            for split in job.test_splits:
                decode(model, job.fbank / f"{split}.jsonl.gz", job.exp, config.decode, split=split,
                       progress=progress, lms=dict(job.lms), data=config.data)  # fmt: skip
    except Exception as e:
        e.add_note(f"in study job {job.label} ({job.exp})")
        raise
    if None not in before and _mtimes(outputs) == before:
        return f"{job.label}: already trained and decoded, skipped ({job.exp})"
    return f"{job.label}: trained and decoded in {time.monotonic() - start:.0f} s ({job.exp})"


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. a container's share)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads_per_job(jobs: int) -> int:
    """Torch threads for each of ``jobs`` processes sharing this process's cores."""
    return max(1, usable_cores() // jobs)


def study_jobs(jobs: int | str) -> int:
    """``study.jobs`` as a number: ``auto`` is one job per usable core (one
    1-thread process per core trains the most audio per second on a CPU)."""
    return usable_cores() if jobs == "auto" else int(jobs)


def run_model_jobs(
    jobs: list[ModelJob] | list[LMJob], config: Config, progress: bool, echo: Callable[[str], None]
) -> None:
    """Run the jobs one after another, or ``config.study.jobs`` (:func:`study_jobs`) at a time in
    spawned processes sharing the cores (no progress bars then: they would
    interleave; each finished job is reported, and metrics.csv grows per epoch).
    The first failure stops the queue: no further job starts, jobs already
    running finish and keep their models. An interrupt (Ctrl-C, SIGINT) stops
    the queue and the running jobs too (a re-run resumes them from their last
    epoch checkpoint)."""
    n = min(study_jobs(config.study.jobs), len(jobs))
    if n <= 1:
        for job in jobs:
            echo(_runner(job)(job, config, progress))
        return
    threads = threads_per_job(n)
    kind = "language models" if isinstance(jobs[0], LMJob) else "models"
    echo(f"training {len(jobs)} {kind}, {n} at a time ({threads} thread(s) each)")
    # spawn, not fork: forking a process whose torch thread pools have started can deadlock.
    ctx = multiprocessing.get_context("spawn")
    # The executor hands workers more jobs than they run at once, beyond the
    # reach of cancel_futures: the shared flag keeps those from starting.
    stop = ctx.Event()
    with ProcessPoolExecutor(n, mp_context=ctx, initializer=_worker_init, initargs=(stop,)) as pool:
        futures = [pool.submit(_run_queued, _runner(job), job, config, False, threads) for job in jobs]
        try:
            for future in as_completed(futures):
                if (line := future.result()) is None:
                    raise KeyboardInterrupt  # a worker was interrupted between jobs
                echo(line)
        except BaseException as e:
            stop.set()
            if isinstance(e, KeyboardInterrupt):
                # A terminal's Ctrl-C reaches the workers too; a SIGINT to this
                # process alone is passed on, so that it ends the study as promptly.
                for worker in multiprocessing.active_children():
                    os.kill(worker.pid, signal.SIGINT)
            pool.shutdown(wait=True, cancel_futures=True)
            raise


# In each worker process of run_model_jobs: the study's stop flag, whether this
# worker was interrupted, and whether a job is running (an interrupt ends it;
# between jobs it only stops the queue).
_stop = None
_interrupted_here = False
_running = False


def _worker_init(stop) -> None:
    global _stop
    _stop = stop
    signal.signal(signal.SIGINT, _interrupted)


def _interrupted(signum, frame) -> None:
    # No lock here: the shared flag's set() takes a lock that is not reentrant,
    # and the signal can arrive while this process holds it in is_set()
    # (deadlock). The worker's next job returns None instead, and the study
    # process sets the shared flag when it sees that.
    global _running, _interrupted_here
    _interrupted_here = True
    if _running:
        _running = False  # one KeyboardInterrupt per job: a second SIGINT must not break its clean-up
        raise KeyboardInterrupt


def _run_queued(runner: Callable[..., str], job, *args) -> str | None:
    """``runner(job, *args)`` in a worker, unless the study is stopping (None: not started)."""
    global _running
    _running = True  # before the check: a SIGINT in between raises here, before the job
    try:
        if _interrupted_here or _stop.is_set():
            return None
        return runner(job, *args)
    finally:
        _running = False


def _runner(job: ModelJob | LMJob) -> Callable[..., str]:
    return run_lm_job if isinstance(job, LMJob) else run_model_job


def score_all(
    out: Path, bootstrap: int = 1000, seed: int = 0, divergence_unit: str = "char", mdd: bool = True
) -> list[Path]:
    """The score stage: error-rate and ED-gap tables, and MDD tables where the
    test set is phone-annotated, for every test split of every language.
    Test manifests come from ``corpora.json``."""
    from dualasr.score.mdd import score_study_mdd
    from dualasr.score.study import score_study

    out = Path(out)
    manifests = {lang: {split: manifest_path(d, split) for split in test_splits(d)}
                 for lang, d in read_corpora(out).items()}  # fmt: skip
    result = score_study(
        out, bootstrap=bootstrap, seed=seed, hyps_dir=out / "exp", manifests=manifests,
        divergence_unit=divergence_unit,
    )  # fmt: skip
    return result.files + (score_study_mdd(out / "exp", manifests, out / "tables") if mdd else [])
