"""Training fixtures: a tiny DO model config (dropout and SpecAugment on, so
resuming must restore the RNG states too), an uninterrupted reference run and
one stopped after its first epoch on the ``tiny_corpus`` of tests/conftest.py,
and a small meaning LM."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from dualasr.config import load_config, model_config
from dualasr.model.lm import LMConfig
from dualasr.train.lm import train_lm
from dualasr.train.trainer import train
from tests.torch_fixtures import single_thread

TRAIN_YAML = """\
seed: 0
model:
  d_model: 32
  subsampling_channels: 16
  encoder: {layers: 2, heads: 2, ffn_dim: 64, kernel: 5, dropout: 0.1, attn_dropout: 0.1}
  decoder: {layers: 1, heads: 2, ffn_dim: 64, dropout: 0.1, attn_dropout: 0.1}
  specaug: {freq_width: 10, time_width: 20, time_warp: 3}
train:
  epochs: 3
  max_duration: 6
  num_buckets: 2
  lr: 0.003
  warmup_steps: 4
  average_best: 2
  log_every: 1
"""


class Run:
    """What ``train`` needs besides an output directory, from one YAML file
    (the same file the CLI reads in the kill test)."""

    def __init__(self, yaml_path: Path, corpus: Path):
        self.yaml = yaml_path
        self.corpus = corpus
        self.cfg = load_config(yaml_path)
        self.model_cfg = model_config(self.cfg, "do")
        self.train_cfg = self.cfg.train
        self.cmvn = json.loads((corpus / "fbank" / "cmvn.json").read_text())

    def __call__(self, out: Path, model_cfg=None, train_cfg=None, text=None, **kw) -> Path:
        return train(
            model_cfg or self.model_cfg, train_cfg or self.train_cfg,
            self.corpus / "fbank" / "train.jsonl.gz", self.corpus / "fbank" / "dev.jsonl.gz",
            self.cmvn, out, seed=0, text=text or self.cfg.text, progress=False, **kw,
        )  # fmt: skip

    @staticmethod
    def metric_rows(path: Path, drop=("seconds",)) -> list[tuple[str, str, str, str, str]]:
        """``metrics.csv`` rows without wall-clock metrics."""
        with open(path) as f:
            return [tuple(r.values()) for r in csv.DictReader(f) if r["metric"] not in drop]

    @staticmethod
    def weights(path: Path) -> dict[str, torch.Tensor]:
        return torch.load(path, map_location="cpu", weights_only=True)["model"]

    @staticmethod
    def assert_same_weights(a: Path, b: Path) -> None:
        wa, wb = Run.weights(a), Run.weights(b)
        assert wa.keys() == wb.keys()
        different = [k for k in wa if not torch.equal(wa[k], wb[k])]
        assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


@pytest.fixture(scope="session")
def run(tiny_corpus, tmp_path_factory) -> Run:
    path = tmp_path_factory.mktemp("train_conf") / "tiny.yaml"
    path.write_text(TRAIN_YAML)
    return Run(path, tiny_corpus)


@pytest.fixture(scope="session")
def reference(run, tmp_path_factory) -> Path:
    """An uninterrupted 3-epoch run (one intra-op thread, as every test here)."""
    out = tmp_path_factory.mktemp("reference") / "do"
    with single_thread():
        run(out)
    return out


@pytest.fixture(scope="session")
def stopped(run, tmp_path_factory) -> Path:
    """A run stopped after epoch 1 of 3 (``checkpoints/last.pt`` present)."""
    out = tmp_path_factory.mktemp("stopped") / "do"
    with single_thread():
        run(out, stop_after_epoch=1)
    return out


#: The meaning LM's settings: small enough to train in a second.
SMALL_LM = LMConfig(embed=16, hidden=32, epochs=8, lr=0.01, batch_size=8)


@pytest.fixture(scope="session")
def meaning_lm(tiny_corpus, tmp_path_factory) -> Path:
    """``lm.pt`` of a meaning LM trained on the tiny corpus."""
    out = tmp_path_factory.mktemp("lm") / "meaning"
    fbank = tiny_corpus / "fbank"
    return train_lm(fbank / "train.jsonl.gz", fbank / "dev.jsonl.gz", "meaning", out, SMALL_LM)
