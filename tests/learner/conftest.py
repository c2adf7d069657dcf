"""A trained and decoded DO run inside a study layout, packaged once per session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dualasr.config import DecodeConfig, TrainConfig
from dualasr.decode.run import decode
from dualasr.layout import RunInfo, write_run_info
from dualasr.learner.package import package_run
from dualasr.model import preset


@pytest.fixture(scope="session")
def do_run(tiny_corpus, tmp_path_factory) -> Path:
    """``DIR/exp/en/do/seed0``: a tiny DO model trained for a few epochs on the
    session's tiny espeak-ng corpus, with its test split decoded
    (``hyps_test.jsonl``, ``*.trn``, ``decode_test.json``)."""
    from dualasr.train.trainer import train

    study = tmp_path_factory.mktemp("learner_study")
    (study / "corpora.json").write_text(json.dumps({"en": str(tiny_corpus)}))
    run = study / "exp" / "en" / "do" / "seed0"
    fbank = tiny_corpus / "fbank"
    cfg = preset("smoke", mode="do", d_model=32, subsampling_channels=8,
                 encoder={"layers": 2, "heads": 2, "ffn_dim": 64, "kernel": 5},
                 decoder={"layers": 1, "heads": 2, "ffn_dim": 64}, specaug={"enabled": False})  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(cfg, TrainConfig(epochs=2, max_duration=20, lr=2e-3, warmup_steps=2, average_best=1),
              fbank / "train.jsonl.gz", fbank / "dev.jsonl.gz", json.loads((fbank / "cmvn.json").read_text()),
              run, seed=0, progress=False)  # fmt: skip
        write_run_info(run, RunInfo("do", cfg.mode, cfg.outputs, "en", 0, "", cfg.model_dump()))
        decode(run / "model.pt", fbank / "test.jsonl.gz", run, DecodeConfig(beam=2), progress=False)
    finally:
        torch.set_num_threads(threads)
    return run


@pytest.fixture(scope="session")
def do_package(do_run, tmp_path_factory) -> Path:
    return package_run(do_run, tmp_path_factory.mktemp("packages") / "en-do.dualasr")
