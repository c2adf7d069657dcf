"""A tiny study directory with really trained models, shared by the analysis tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from dualasr.config import TrainConfig
from dualasr.model import preset

#: model directory name -> (mode, task-specific encoder blocks)
TINY_MODELS = {"sso": ("sso", 0), "mso": ("mso", 0), "do": ("do", 0), "do_branch": ("do", 1)}
ENCODER_LAYERS, DECODER_LAYERS, D_MODEL = 2, 2, 32


def tiny_model_config(mode: str, task_specific_layers: int = 0):
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
    )  # fmt: skip


@pytest.fixture(scope="session")
def tiny_study(tiny_corpus, tmp_path_factory) -> Path:
    """``DIR/corpora.json`` -> the session's tiny corpus and
    ``DIR/exp/en/{sso,mso,do,do_branch}/seed0/model.pt``, each trained for one
    epoch (a few steps). ``do_branch`` has one task-specific encoder block per
    output. Tests copy it before changing anything."""
    from dualasr.train.trainer import train

    out = tmp_path_factory.mktemp("tiny_study")
    (out / "corpora.json").write_text(json.dumps({"en": str(tiny_corpus)}))
    fbank = tiny_corpus / "fbank"
    cmvn = json.loads((fbank / "cmvn.json").read_text())
    cfg = TrainConfig(epochs=1, max_duration=20, lr=2e-3, warmup_steps=2, average_best=1, log_every=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, (mode, branch) in TINY_MODELS.items():
            train(
                tiny_model_config(mode, branch), cfg, fbank / "train.jsonl.gz", fbank / "dev.jsonl.gz",
                cmvn, out / "exp" / "en" / name / "seed0", seed=0, progress=False,
            )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture
def study_copy(tiny_study, tmp_path) -> Path:
    """A private copy of the tiny study (models included), safe to modify."""
    dst = tmp_path / "study"
    shutil.copytree(tiny_study, dst)
    return dst
