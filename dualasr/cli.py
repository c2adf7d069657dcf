"""The ``dualasr`` command line: parse, load the config, call one library function.

Every command is a thin wrapper; everything it does is callable from Python.
"""

from __future__ import annotations

import functools
import logging
import os
from contextlib import nullcontext
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from dualasr.config import load_config
from dualasr.errors import DualasrError
from dualasr.rundir import locked

app = typer.Typer(
    help="Dual-output (surface + meaning) L2 speech recognition toolkit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Format(str, Enum):
    jsonl = "jsonl"
    csv = "csv"
    kaldi = "kaldi"


def _writer(run_dir: Path):
    """Hold ``run_dir`` for this command; under torchrun rank 0 holds it for every rank."""
    return locked(run_dir) if os.environ.get("RANK", "0") == "0" else nullcontext()


def _user_errors(fn):
    """Report bad input as one clear line on stderr (exit 2) instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (DualasrError, FileExistsError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None

    return wrapper


_SKIP_INVALID_HELP = (
    "Leave out cuts that cannot be used (unreadable audio, longer than data.max_utterance_seconds), "
    "counted and listed in a .skipped.tsv, instead of stopping; as data.skip_invalid: true."
)


def _with_skip_invalid(cfg, skip_invalid: bool):
    """``cfg`` with ``data.skip_invalid`` set when the flag asks for it (the flag
    turns skipping on; the config alone can too)."""
    if not skip_invalid:
        return cfg
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"skip_invalid": True})})


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False):
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )


@app.command()
@_user_errors
def synth(
    config: Annotated[Path, typer.Option(help="Study config (YAML).")] = Path("conf/demo.yaml"),
    out: Annotated[Path, typer.Option(help="Corpus directory: <out>/<lang>/cuts_<split>.jsonl.gz.")] = Path(
        "runs/demo/data"
    ),
    allow_fewer_voices: Annotated[
        bool, typer.Option(help="Build from the installed synthesizers only, if some are missing.")
    ] = False,
    list_voices: Annotated[bool, typer.Option(help="List every known voice and whether it is installed.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
):
    """Build the synthetic English + Korean L2 corpus (audio from the surface form)."""
    from dualasr.data.synth import engines
    from dualasr.data.synth.corpus import build_corpus, describe

    if list_voices:
        for lang in ("en", "ko"):
            voices = engines.all_voices(lang)
            missing = engines.missing_packages(voices)
            for v in voices:
                state = f"missing (apt: {missing[v.id]})" if v.id in missing else "installed"
                typer.echo(f"{lang}\t{v.id}\t{v.engine}\t{state}")
        return
    cfg = load_config(config)
    for report in build_corpus(cfg, out, allow_fewer_voices=allow_fewer_voices, progress=progress):
        typer.echo(describe(report))


@app.command()
@_user_errors
def stats(
    manifests: Annotated[list[Path], typer.Argument(help="Manifests (cuts_<split>.jsonl.gz) or directories.")],
    unit: Annotated[str, typer.Option(help="Divergence unit for orthographic corpora: char or word.")] = "char",
    check_audio: Annotated[bool, typer.Option(help="Also check that every audio file is readable.")] = False,
):
    """Print corpus statistics in the reference study's Table 1 layout."""
    from dualasr.data.stats import corpus_stats, format_table

    if unit not in ("char", "word"):
        raise typer.BadParameter("--unit must be char or word")
    typer.echo(format_table(corpus_stats(manifests, unit=unit, check_audio=check_audio)))


@app.command("import", hidden=True, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def import_replaced(ctx: typer.Context):
    """Replaced by ``dualasr prepare jsonl|csv|kaldi``; says so instead of "No such command"."""
    typer.echo(
        "error: `dualasr import` is now `dualasr prepare jsonl|csv|kaldi SOURCE OUT_DIR`: it writes "
        "OUT_DIR/cuts_<split>.jsonl.gz (-o split=dev for another split than train, "
        "-o language=ko for a Kaldi directory without utt2lang)",
        err=True,
    )
    raise typer.Exit(2)


@app.command()
@_user_errors
def export(
    fmt: Annotated[Format, typer.Argument(help="Output format.")],
    manifest: Annotated[Path, typer.Argument(help="Manifest to export.")],
    output: Annotated[Path, typer.Argument(help="Output file (jsonl/csv) or directory (kaldi).")],
    overwrite: Annotated[bool, typer.Option(help="Replace existing files.")] = False,
):
    """Export a manifest as plain JSONL/CSV or a Kaldi data directory."""
    from dualasr.data import manifest as m

    cuts = m.load_manifest(manifest, check_audio=False)
    {Format.jsonl: m.export_jsonl, Format.csv: m.export_csv, Format.kaldi: m.export_kaldi}[fmt](
        cuts, output, overwrite=overwrite
    )
    typer.echo(f"exported {len(cuts)} utterances to {output}")


def _preparer_options(fn, pairs: list[str]) -> dict:
    """``KEY=VALUE`` strings -> keyword arguments of preparer ``fn``, converted by
    the parameter's annotation (bool, int, float, comma-separated lists, str)."""
    import inspect

    params = {
        n: p for n, p in inspect.signature(fn).parameters.items()
        if n not in ("corpus_dir", "output_dir", "skip_invalid", "overwrite")
    }  # fmt: skip
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in params:
            valid = ", ".join(sorted(params)) or "none"
            raise typer.BadParameter(f"{pair!r}: expected KEY=VALUE with KEY one of: {valid}")
        ann = str(params[key].annotation)
        if "bool" in ann:
            if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise typer.BadParameter(f"{key}: expected true or false, got {value!r}")
            out[key] = value.lower() in ("1", "true", "yes")
        elif "Sequence" in ann or "list" in ann:
            out[key] = [v for v in value.split(",") if v]
        elif "float" in ann:
            out[key] = float(value)
        elif "int" in ann:
            out[key] = int(value)
        else:
            out[key] = value
    return out


@app.command()
@_user_errors
def prepare(
    corpus: Annotated[str, typer.Argument(help="l2arctic, speechocean762, ksponspeech, aihub-l2, jsonl, csv, kaldi.")],
    corpus_dir: Annotated[
        Path,
        typer.Argument(help="The corpus as distributed (see docs for each layout), or a JSONL/CSV file or Kaldi dir."),
    ],
    out_dir: Annotated[Path, typer.Argument(help="Where cuts_{train,dev,test}.jsonl.gz go.")],
    option: Annotated[
        list[str], typer.Option("--option", "-o", help="Corpus option KEY=VALUE, e.g. -o tags=drop.")
    ] = [],  # noqa: B006 - typer needs a literal default
    skip_invalid: Annotated[bool, typer.Option(help="Skip bad items (listed in skipped.tsv) instead of stopping.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace existing manifests.")] = False,
):
    """Prepare a corpus, or plain JSONL/CSV/Kaldi data, into manifests keeping both the surface and the meaning side.

    jsonl, csv, kaldi: one input (to -o split=..., default train) or one per split in a directory.
    """
    from dualasr.data.prepare import PREPARERS

    if corpus not in PREPARERS:
        raise typer.BadParameter(f"unknown corpus {corpus!r}; choose from {', '.join(PREPARERS)}")
    fn = PREPARERS[corpus]
    report = fn(corpus_dir, out_dir, skip_invalid=skip_invalid, overwrite=overwrite, **_preparer_options(fn, option))
    typer.echo(str(report))


@app.command()
@_user_errors
def train(
    data: Annotated[Path, typer.Option(help="Corpus directory with cuts_{train,dev}.jsonl.gz.")],
    out: Annotated[Path, typer.Option(help="Experiment directory (checkpoints, model.pt, metrics.csv).")],
    model: Annotated[str, typer.Option(help="Which variant of the config's study.models: sso, mso, do or any other name.")] = "do",
    config: Annotated[Path, typer.Option(help="Study config (YAML): model, train and text sections.")] = Path(
        "conf/demo.yaml"
    ),
    seed: Annotated[int, typer.Option(help="Study seed: the variant trains from model_seed(seed, name), as in `dualasr study`.")] = 0,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    skip_invalid: Annotated[bool, typer.Option(help=_SKIP_INVALID_HELP)] = False,
):
    """Train one variant of the config (features are computed and cached first)
    exactly as `dualasr study` trains it for the same seed: same merged model
    and train sections, same training seed, so the weights are identical.
    Several processes: `torchrun --nproc-per-node N -m dualasr.cli train ...`.
    Epochs: the variant's ``train.epochs``, else the config's ``study.epochs``
    for the corpus language, else ``train.epochs``."""
    import json

    from lhotse import CutSet

    from dualasr.config import ConfigError, model_config, model_label, train_config
    from dualasr.data.features import compute_features
    from dualasr.data.manifest import supervision
    from dualasr.layout import TRAIN_SPLITS
    from dualasr.train.trainer import train as train_model

    cfg = _with_skip_invalid(load_config(config), skip_invalid)
    if model not in cfg.study.models:
        raise ConfigError(f"{config}: study.models has no variant {model!r} (variants: {', '.join(cfg.study.models)})")
    with _writer(out):
        # Training reads train and dev only: a corpus's test splits may be named
        # anything (test, test_seen, test_unseen) and are decoded separately.
        fbank = compute_features(data, TRAIN_SPLITS, progress=progress, skip_invalid=cfg.data.skip_invalid)
        # The corpus language picks study.epochs: one lazily read cut tells it (the
        # trainer reads and validates the whole manifest; an empty one fails there).
        first = next(iter(CutSet.from_jsonl_lazy(fbank / "train.jsonl.gz")), None)
        train_cfg = train_config(cfg, supervision(first).language if first else None, model)
        path = train_model(
            model_config(cfg, model), train_cfg, fbank / "train.jsonl.gz", fbank / "dev.jsonl.gz",
            json.loads((fbank / "cmvn.json").read_text()), out, seed=seed,
            text=cfg.text, progress=progress, data=cfg.data, name=model, label=model_label(cfg, model),
        )  # fmt: skip
    typer.echo(f"model: {path}")


class Output(str, Enum):
    surface = "surface"
    meaning = "meaning"


@app.command("train-lm")
@_user_errors
def train_lm(
    data: Annotated[Path, typer.Option(help="Corpus directory with cuts_{train,dev}.jsonl.gz.")],
    out: Annotated[Path, typer.Option(help="LM directory (lm.pt, tokens_<output>.json, metrics.csv).")],
    output: Annotated[Output, typer.Option(help="Whose text the LM learns: surface or meaning.")] = Output.meaning,
    config: Annotated[Path, typer.Option(help="Study config (YAML): lm and text sections.")] = Path("conf/demo.yaml"),
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
):
    """Train a token LSTM language model on one output's training text, for
    shallow fusion in `dualasr decode --lm OUTPUT=PATH`."""
    from dualasr.train.lm import train_lm as train_language_model

    cfg = load_config(config)
    with locked(out):
        path = train_language_model(data / "cuts_train.jsonl.gz", data / "cuts_dev.jsonl.gz", output.value,
                                    out, cfg.lm, cfg.text, seed=seed)  # fmt: skip
    typer.echo(f"language model: {path}")


def _lm_paths(pairs: list[str]) -> dict[str, Path]:
    lms = {}
    for pair in pairs:
        output, sep, path = pair.partition("=")
        if not sep or output not in {o.value for o in Output} or not path:
            raise typer.BadParameter(f"--lm {pair!r}: expected OUTPUT=PATH with OUTPUT surface or meaning")
        lms[output] = Path(path)
    return lms


@app.command()
@_user_errors
def decode(
    model_path: Annotated[Path, typer.Option("--model", help="Trained model.pt (or a checkpoint).")],
    data: Annotated[Path, typer.Option(help="Corpus directory (features are computed if missing).")],
    out: Annotated[Path, typer.Option(help="Where hyps_<split>.jsonl and .trn files go.")],
    split: Annotated[str, typer.Option(help="Which split to decode.")] = "test",
    config: Annotated[Path, typer.Option(help="Study config (YAML): decode section.")] = Path("conf/demo.yaml"),
    lm: Annotated[
        list[str] | None,
        typer.Option(help="OUTPUT=PATH: a language model (dualasr train-lm) fused with decode.lm_weight[OUTPUT]."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    skip_invalid: Annotated[bool, typer.Option(help=_SKIP_INVALID_HELP)] = False,
):
    """Decode a split with a trained model: both outputs of a DO model from one encoder pass."""
    from dualasr.data.features import compute_features
    from dualasr.decode.run import decode as decode_split

    cfg = _with_skip_invalid(load_config(config), skip_invalid)
    lms = _lm_paths(lm or [])
    fbank = compute_features(data, splits=(split,), progress=progress, skip_invalid=cfg.data.skip_invalid)
    with locked(out):
        path = decode_split(model_path, fbank / f"{split}.jsonl.gz", out, cfg.decode, split=split,
                            progress=progress, lms=lms, data=cfg.data)  # fmt: skip
    typer.echo(f"hypotheses: {path}")


@app.command()
@_user_errors
def score(
    study_dir: Annotated[Path, typer.Argument(help="Study directory (data/<lang>, exp/<lang>/<model>/seed<k>).")],
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples per confidence interval.")] = 1000,
    unit: Annotated[str, typer.Option(help="Divergence unit: char or word.")] = "char",
    mdd: Annotated[
        bool, typer.Option(help="Mispronunciation detection and diagnosis for phone-annotated test sets.")
    ] = True,
):
    """Score every decoded model: tables/cer.*, tables/ed_gap.*, figures/ed_gap.png,
    and with --mdd (default) MDD tables (tables/mdd_*) for phone-annotated test sets."""
    from dualasr.study import score_all

    for path in score_all(study_dir, bootstrap=bootstrap, divergence_unit=unit, mdd=mdd):
        typer.echo(f"wrote {path}")


@app.command()
@_user_errors
def analyze(
    study_dir: Annotated[Path, typer.Argument(help="Study directory (corpora.json, exp/<lang>/<model>/seed<k>).")],
    debiased: Annotated[
        bool, typer.Option("--debiased/--biased", help="CKA estimator of the `cka` column and the tables.")
    ] = True,
    batch_size: Annotated[int, typer.Option(help="Test utterances per forward pass.")] = 16,
    max_utterances: Annotated[int | None, typer.Option(help="Analyse only the first N test cuts by id.")] = None,
    force: Annotated[bool, typer.Option(help="Recompute even where the cache (DIR/analysis) is current.")] = False,
):
    """Layer-wise linear CKA between SSO, MSO and DO (encoders: frame level; decoders:
    utterance level) and the entanglement index: tables/cka_encoder.*, tables/cka_decoder.*,
    tables/entanglement.*, figures/cka_encoder.png, figures/cka_decoder.png."""
    from dualasr.analysis.analyze import analyze_study

    result = analyze_study(
        study_dir, debiased=debiased, batch_size=batch_size, max_utterances=max_utterances,
        force=force, echo=typer.echo,
    )  # fmt: skip
    for path in result.files:
        typer.echo(f"wrote {path}")


@app.command()
@_user_errors
def report(
    study_dir: Annotated[Path, typer.Argument(help="Study directory (tables/, figures/, exp/<lang>/<model>/seed<k>).")],
):
    """Write DIR/report.html (one self-contained file) and DIR/report.md: corpus, error
    rates, ED gaps, training curves and CKA, with findings and the reference study's numbers."""
    from dualasr.report import build_report

    result = build_report(study_dir)
    typer.echo(f"wrote {result.markdown}")
    typer.echo(f"report: {result.html}")


@app.command()
@_user_errors
def study(
    config: Annotated[Path, typer.Option(help="Study config (YAML).")] = Path("conf/demo.yaml"),
    out: Annotated[Path, typer.Option(help="Study directory.")] = Path("runs/demo"),
    allow_fewer_voices: Annotated[bool, typer.Option(help="See `dualasr synth`.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    until: Annotated[
        str | None, typer.Option(help="Last stage to run: corpus (corpus + statistics), score, analyze, report; default: all.")
    ] = None,
    skip_invalid: Annotated[bool, typer.Option(help=_SKIP_INVALID_HELP)] = False,
):
    """Run every stage of the study; finished stages are skipped on re-run."""
    from dualasr.study import STAGES, run_study

    until = until or STAGES[-1]
    if until not in STAGES:
        raise typer.BadParameter(f"--until must be one of {', '.join(STAGES)}")
    cfg = _with_skip_invalid(load_config(config), skip_invalid)
    run_study(cfg, out, allow_fewer_voices=allow_fewer_voices, progress=progress, echo=typer.echo, until=until)


@app.command()
@_user_errors
def package(
    run_dir: Annotated[Path, typer.Argument(help="A trained run: model.pt, run.json (e.g. runs/demo/exp/en/do/seed0).")],
    out: Annotated[Path, typer.Argument(help="The package file to write (e.g. en-do.dualasr).")],
    lm: Annotated[
        list[str] | None,
        typer.Option(help="OUTPUT=PATH: a language model to fuse; default: those the run's test decoding fused."),
    ] = None,
    corpus: Annotated[Path | None, typer.Option(help="Training corpus directory, when the run is not in a study.")] = None,
):
    """Package a trained run into one file for `dualasr transcribe` and `dualasr serve`."""
    from dualasr.learner.package import package_run

    path = package_run(run_dir, out, _lm_paths(lm) if lm else None, corpus)
    typer.echo(f"package: {path}")


class TranscriptFormat(str, Enum):
    text = "text"
    json = "json"
    csv = "csv"


@app.command()
def transcribe(
    model: Annotated[Path, typer.Argument(help="A packaged model (dualasr package).")],
    audio: Annotated[list[Path], typer.Argument(help="Recordings (any common format and sample rate).")],
    text: Annotated[str | None, typer.Option(help="The sentence the learner meant (replaces the meaning output).")] = None,
    format: Annotated[TranscriptFormat, typer.Option(help="text (coloured), json (one object per line), csv (one row per diff word).")] = TranscriptFormat.text,
    beam: Annotated[int | None, typer.Option(help="Beam size (default: the packaged run's).")] = None,
    ctc_weight: Annotated[float | None, typer.Option(help="CTC weight in beam search (default: the packaged run's).")] = None,
    lm_weight: Annotated[float | None, typer.Option(help="Weight of the packaged LMs (default: the packaged run's).")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
):
    """What a learner said and meant, and where the two differ, for each recording.
    A file that fails is reported on stderr and the others go on; exit 2 if any failed."""
    from dualasr.learner.output import run_files

    try:
        failed = run_files(model, audio, format.value, text=text, beam=beam, ctc_weight=ctc_weight,
                           lm_weight=lm_weight, progress=progress)  # fmt: skip
    except DualasrError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if failed:
        raise typer.Exit(2)


@app.command()
@_user_errors
def serve(
    models: Annotated[list[Path], typer.Argument(help="Packaged models (dualasr package), e.g. one per language; the first is the default.")],
    host: Annotated[str, typer.Option(help="Address to bind; other than loopback, anyone who reaches it can upload.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    max_upload_mb: Annotated[float, typer.Option(help="Largest accepted upload (413 above).")] = 20.0,
    max_seconds: Annotated[float, typer.Option(help="Longest accepted recording (422 above).")] = 60.0,
    workers: Annotated[int, typer.Option(help="Transcriptions run at once; more requests wait their turn.")] = 2,
    keep_uploads: Annotated[
        Path | None, typer.Option(help="Save every recording and its result JSON here (default: nothing is kept).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, mps; default: the best available.")] = None,
):
    """Serve the models over HTTP: POST /transcribe, GET /models, the learner's page at /
    and the API's documentation at /docs (docs/serve.md)."""
    import uvicorn

    from dualasr.device import pick_device
    from dualasr.learner.package import load_package
    from dualasr.learner.serve import create_app, model_key

    packages = {}
    for path in models:
        package = load_package(path, device=device or str(pick_device()))
        key = model_key(package)
        if key in packages:
            raise DualasrError(f"{path}: a second model {key!r}; serve one package per language and model name")
        packages[key] = package
    if host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger(__name__).warning("serving on %s: anyone who can reach it can upload recordings", host)
    app_ = create_app(packages, max_upload_bytes=int(max_upload_mb * 1024 * 1024), max_seconds=max_seconds,
                      workers=workers, keep_uploads=keep_uploads)  # fmt: skip
    typer.echo(f"models: {', '.join(packages)}; page at http://{host}:{port}/ (API docs at /docs)")
    uvicorn.run(app_, host=host, port=port)


if __name__ == "__main__":  # `python -m dualasr.cli` / `torchrun -m dualasr.cli`
    app()
