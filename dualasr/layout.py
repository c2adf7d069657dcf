"""The study folder layout, and what a trained run *is*: the one place that
knows where runs live and how to read their identity, so that score, analysis
and report read what a model is from its run and never from a folder name.

Layout of a study directory ``DIR``::

    DIR/corpora.json                        language -> corpus directory (corpus stage)
    DIR/exp/<lang>/<name>/seed<k>/          one run: run.json, model.pt, hyps_<split>.jsonl, ...

A corpus directory holds ``cuts_<split>.jsonl.gz`` for ``train``, ``dev`` and
one or more test splits (:func:`test_splits`); every test split is decoded
into a run's ``hyps_<split>.jsonl`` and scored on its own.

``<name>`` is the variant's name in ``study.models`` (``sso``, ``mso``, ``do``,
``do_split2``, ...); a run whose ``run.json`` names another variant, language
or seed than its folder is an error naming both, so a renamed folder cannot
silently change what a run is compared with.

A run directory holds ``run.json``, written by training from the same
configuration that goes into the checkpoint::

    {"name": "do_split2",            # the variant's name in study.models
     "label": "do_split2",           # how tables, figures and the report show it
     "mode": "do",                   # sso | mso | do
     "outputs": ["surface", "meaning"],
     "language": "en",
     "seed": 0,                      # the study seed (training used model_seed(seed, name))
     "model_config": {...}}          # ModelConfig.model_dump(), as in the checkpoint

The baseline of output ``o`` of a run is the single-output run of the same
language and seed whose outputs are exactly ``(o,)`` (:func:`baseline_of`).

This module reads and writes JSON only (no torch), so scoring and reporting
stay light.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dualasr.atomic import atomic_write_text
from dualasr.errors import DualasrError

#: The identity file of a run directory.
RUN_FILE = "run.json"
#: What training reports about a finished run (parameter count, steps, ...).
SUMMARY_FILE = "train_summary.json"
#: Where a study keeps its runs, under the study directory.
EXP_DIR = "exp"
#: Language -> corpus directory of a study, under the study directory.
CORPORA_FILE = "corpora.json"
#: The outputs a model can have, in table order.
OUTPUTS: tuple[str, ...] = ("surface", "meaning")

#: Display labels of the reference study's models; any other variant shows its name.
_LABELS = {"sso": "SSO", "mso": "MSO", "do": "DO"}


class LayoutError(DualasrError, ValueError):
    """A study or run directory that does not hold what it should; names the path."""


def run_dir(study_dir: str | Path, language: str, name: str, seed: int) -> Path:
    """``DIR/exp/<language>/<name>/seed<seed>``: where the study trains run ``name``."""
    return Path(study_dir) / EXP_DIR / language / name / f"seed{seed}"


def hyps_name(split: str) -> str:
    """File name of a run's decoded hypotheses of ``split``: ``hyps_<split>.jsonl``."""
    return f"hyps_{split}.jsonl"


#: The splits every corpus has besides its test splits.
TRAIN_SPLITS: tuple[str, ...] = ("train", "dev")
_TEST_MANIFEST = re.compile(r"cuts_(test(?:_\w+)?)\.jsonl\.gz")
_HYPS = re.compile(r"hyps_(\w+)\.jsonl")


def test_splits(corpus_dir: str | Path) -> tuple[str, ...]:
    """The test splits of a corpus directory, sorted: one per ``cuts_test*.jsonl.gz``
    (``test`` for a prepared corpus or a synthetic one without a prompt pool;
    ``test_seen`` and/or ``test_unseen`` for one read from a prompt pool)."""
    d = Path(corpus_dir)
    found = (m.group(1) for p in d.glob("cuts_test*.jsonl.gz") if (m := _TEST_MANIFEST.fullmatch(p.name)))
    return tuple(sorted(found))


def manifest_path(corpus_dir: str | Path, split: str) -> Path:
    """``<corpus_dir>/cuts_<split>.jsonl.gz``: the manifest of ``split``."""
    return Path(corpus_dir) / f"cuts_{split}.jsonl.gz"


def analysis_split(splits: Sequence[str]) -> str:
    """The test split the CKA analysis runs on: ``test_unseen`` when the corpus
    has it (representations of sentences no decoder has been trained on, as
    with a corpus without a prompt pool), else the first of ``splits``."""
    return "test_unseen" if "test_unseen" in splits else sorted(splits)[0]


_SEED_DIR = re.compile(r"seed(\d+)")


def parse_seed(path: str | Path) -> int:
    """The seed ``k`` of a run directory named ``seed<k>``; any other name is an error naming it."""
    m = _SEED_DIR.fullmatch(Path(path).name)
    if not m:
        raise LayoutError(f"{path}: a run directory must be named seed<integer>")
    return int(m.group(1))


def _read_json(path: Path, if_missing: str):
    """The JSON value in ``path``; a missing or unreadable file is a
    :class:`LayoutError` naming it (``if_missing`` says what to do)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LayoutError(f"{path}: missing; {if_missing}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LayoutError(f"{path}: unreadable ({e})") from None


def read_corpora(study_dir: str | Path) -> dict[str, str]:
    """Language -> corpus directory of a study (``corpora.json``, written by the corpus stage)."""
    path = Path(study_dir) / CORPORA_FILE
    data = _read_json(path, "run the corpus stage (dualasr study) first")
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise LayoutError(f"{path}: expected an object language -> corpus directory")
    return data


def default_label(name: str) -> str:
    """``SSO`` / ``MSO`` / ``DO`` for the reference study's models, else ``name``."""
    return _LABELS.get(name, name)


@dataclass(frozen=True)
class RunInfo:
    """The identity of one trained run (see the module docstring)."""

    name: str
    mode: str
    outputs: tuple[str, ...]
    language: str
    seed: int
    label: str = ""
    model_config: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "outputs", tuple(self.outputs))
        if not self.label:
            object.__setattr__(self, "label", default_label(self.name))

    @property
    def single(self) -> bool:
        """True for a single-output (SO) model."""
        return len(self.outputs) == 1


def write_run_info(run_dir: str | Path, info: RunInfo) -> Path:
    """Write ``run_dir/run.json`` atomically; returns its path."""
    path = Path(run_dir) / RUN_FILE
    data = asdict(info)
    data["outputs"] = list(info.outputs)
    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n", overwrite=True)
    return path


def read_run_info(run_dir: str | Path) -> RunInfo:
    """The identity of the run in ``run_dir``; a missing or malformed ``run.json``
    is an error naming it."""
    path = Path(run_dir) / RUN_FILE
    data = _read_json(path, "the run was not trained by this dualasr (train it again)")
    try:
        return RunInfo(**data)
    except TypeError as e:
        raise LayoutError(f"{path}: not a run identity ({e})") from None


# ---------------------------------------------------------------- discovery

#: Names of the reference study's single-output models: preferred as baselines.
REFERENCE_SO = ("sso", "mso")
_MODE_ORDER = ("sso", "mso", "do")


@dataclass(frozen=True)
class Run:
    """One run of a study: its identity and its directory."""

    info: RunInfo
    dir: Path

    def hyps(self, split: str = "test") -> Path:
        """The run's hypotheses file of ``split``."""
        return self.dir / hyps_name(split)

    def decoded_splits(self) -> tuple[str, ...]:
        """The splits the run has hypotheses of (``hyps_<split>.jsonl``), sorted."""
        return tuple(sorted(m.group(1) for p in self.dir.glob("hyps_*.jsonl") if (m := _HYPS.fullmatch(p.name))))


def discover_runs(exp_dir: str | Path, languages: Iterable[str] | None = None) -> list[Run]:
    """Every run ``<lang>/<name>/seed<k>/`` under ``exp_dir`` (a study's ``exp``),
    in :func:`run_order`. Every run directory must hold ``run.json`` agreeing
    with its place: name, language and seed; a disagreement is an error naming
    the file and both values. ``languages``: only these language directories."""
    exp_dir = Path(exp_dir)
    runs = []
    wanted = None if languages is None else set(languages)
    for lang_dir in sorted(p for p in exp_dir.iterdir() if p.is_dir()) if exp_dir.is_dir() else ():
        if wanted is not None and lang_dir.name not in wanted:
            continue
        for name_dir in sorted(p for p in lang_dir.iterdir() if p.is_dir()):
            for seed_dir in sorted(p for p in name_dir.iterdir() if p.is_dir()):
                seed = parse_seed(seed_dir)
                info = read_run_info(seed_dir)
                place = (name_dir.name, lang_dir.name, seed)
                if (info.name, info.language, info.seed) != place:
                    raise LayoutError(
                        f"{seed_dir / RUN_FILE}: identifies run {info.language}/{info.name}/seed{info.seed} "
                        f"but lies in {lang_dir.name}/{name_dir.name}/seed{seed}; a run's folder is its "
                        "variant name: rename the folder back, or retrain the run under its new name"
                    )
                runs.append(Run(info, seed_dir))
    return sorted(runs, key=lambda r: (r.info.language, *run_order_key(r.info), r.info.seed))


def run_order_key(info: RunInfo) -> tuple:
    """Table order of models: single-output ones first (surface, then meaning),
    the reference study's before others, then dual-output ones, ``do`` first."""
    outputs = tuple(OUTPUTS.index(o) if o in OUTPUTS else len(OUTPUTS) for o in info.outputs)
    return (not info.single, outputs, info.name not in _MODE_ORDER, info.name)


def baseline_of(info: RunInfo, output: str, runs: Sequence[RunInfo]) -> RunInfo | None:
    """The single-output run ``output`` of ``info`` is compared with: same language
    and seed, outputs exactly ``(output,)``. Of several, the one named ``sso`` /
    ``mso``; several others are an error naming them. None when there is none.
    A run that is its own baseline (the SSO model for ``surface``) has no gap."""
    candidates = [
        r for r in runs if r.outputs == (output,) and (r.language, r.seed) == (info.language, info.seed)
    ]  # fmt: skip
    if len(candidates) > 1:
        preferred = [r for r in candidates if r.name in REFERENCE_SO]
        if len(preferred) != 1:
            names = ", ".join(sorted(r.name for r in candidates))
            raise LayoutError(
                f"{info.language} seed {info.seed}: several single-output {output} models ({names}) and none "
                f"named {' or '.join(REFERENCE_SO)}; the {output} baseline of {info.name} is ambiguous"
            )
        candidates = preferred
    return candidates[0] if candidates else None
