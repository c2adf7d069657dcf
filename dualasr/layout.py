"""What a trained run *is*, written beside its model so that every later stage
(decode, score, analysis, report) reads it from there and never from a folder
name.

A run directory holds ``run.json``, written by training from the same
configuration that goes into the checkpoint::

    {"name": "do_split2",            # the variant's name in study.models
     "label": "do_split2",           # how tables, figures and the report show it
     "mode": "do",                   # sso | mso | do
     "outputs": ["surface", "meaning"],
     "language": "en",
     "seed": 0,                      # the study seed (training used model_seed(seed, name))
     "model_config": {...}}          # ModelConfig.model_dump(), as in the checkpoint

This module reads and writes JSON only (no torch), so scoring and reporting
stay light.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dualasr.atomic import atomic_write_text
from dualasr.errors import DualasrError

#: The identity file of a run directory.
RUN_FILE = "run.json"

#: Display labels of the reference study's models; any other variant shows its name.
_LABELS = {"sso": "SSO", "mso": "MSO", "do": "DO"}


class LayoutError(DualasrError):
    """A study or run directory that does not hold what it should; names the path."""


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
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LayoutError(f"{path}: missing; the run was not trained by this dualasr (train it again)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LayoutError(f"{path}: unreadable run identity ({e})") from None
    try:
        return RunInfo(**data)
    except TypeError as e:
        raise LayoutError(f"{path}: not a run identity ({e})") from None
