"""A tiny study directory with really trained models, shared by the analysis tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from dualasr.config import TrainConfig
from dualasr.layout import RunInfo, write_run_info
from dualasr.model import preset

#: variant name -> (mode, task-specific encoder blocks, loss weights)
TINY_MODELS = {
    "sso": ("sso", 0, None), "mso": ("mso", 0, None), "do": ("do", 0, None),
    "do_split": ("do", 1, None),
    "do_w": ("do", 0, {"ctc_surface": 0.3, "att_surface": 0.4, "att_meaning": 0.3}),
}  # fmt: skip
ENCODER_LAYERS, DECODER_LAYERS, D_MODEL = 2, 2, 32


def tiny_model_config(mode: str, task_specific_layers: int = 0, weights: dict | None = None):
    """d=32, 2 encoder blocks (the top ``task_specific_layers`` per output), 2
    decoder layers, no SpecAugment."""
    return preset(
        "smoke",
        mode=mode,
        d_model=D_MODEL,
        subsampling_channels=8,
        encoder={"layers": ENCODER_LAYERS, "heads": 2, "ffn_dim": 64, "kernel": 5,
                 "task_specific_layers": task_specific_layers},
        decoder={"layers": DECODER_LAYERS, "heads": 2, "ffn_dim": 64},
        specaug={"enabled": False},
        weights=weights,
    )  # fmt: skip


def write_identity(run_dir: Path, name: str, cfg, seed: int = 0, lang: str = "en", label: str = "") -> None:
    """``run.json`` as training writes it, from the config the run was trained with."""
    write_run_info(run_dir, RunInfo(name, cfg.mode, cfg.outputs, lang, seed, label, cfg.model_dump()))


@pytest.fixture(scope="session")
def tiny_study(tiny_corpus, tmp_path_factory) -> Path:
    """``DIR/corpora.json`` -> the session's tiny corpus and
    ``DIR/exp/en/{sso,mso,do,do_split,do_w}/seed0/{model.pt,run.json}``, each
    trained for one epoch (a few steps). ``do_split`` has one task-specific
    encoder block per output (label "split"), ``do_w`` other loss weights.
    Tests copy it before changing anything."""
    from dualasr.train.trainer import train

    out = tmp_path_factory.mktemp("tiny_study")
    (out / "corpora.json").write_text(json.dumps({"en": str(tiny_corpus)}))
    fbank = tiny_corpus / "fbank"
    cmvn = json.loads((fbank / "cmvn.json").read_text())
    cfg = TrainConfig(epochs=1, max_duration=20, lr=2e-3, warmup_steps=2, average_best=1, log_every=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, (mode, branch, weights) in TINY_MODELS.items():
            model_cfg = tiny_model_config(mode, branch, weights)
            run = out / "exp" / "en" / name / "seed0"
            train(model_cfg, cfg, fbank / "train.jsonl.gz", fbank / "dev.jsonl.gz", cmvn, run, seed=0, progress=False)
            write_identity(run, name, model_cfg, label="split" if name == "do_split" else "")
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture
def study_copy(tiny_study, tmp_path) -> Path:
    """A private copy of the tiny study (models included), safe to modify."""
    dst = tmp_path / "study"
    shutil.copytree(tiny_study, dst)
    return dst
