"""A model with a pretrained encoder through the real stages: trained on a
corpus (audio loaded from its cuts), saved, loaded back with the architecture
read from its directory, decoded, and its layers captured for CKA beside
another pretrained model's."""

from __future__ import annotations

import json

import pytest

from dualasr.analysis.analyze import analyze_run
from dualasr.analysis.capture import CaptureError, capture_batches
from dualasr.config import TrainConfig
from dualasr.decode.run import decode
from dualasr.layout import read_run_info
from dualasr.model import preset
from dualasr.model.checkpoint import load_model
from dualasr.rundir import StaleOutputError
from dualasr.train.trainer import train
from tests.pretrained_fixtures import save_pretrained_dir


def _train(corpus, weights, out, mode="do", **pretrained):
    cfg = preset("smoke", mode=mode, d_model=32, pretrained={"path": str(weights), **pretrained})
    fbank = corpus / "fbank"
    return train(cfg, TrainConfig(epochs=1, max_duration=30, warmup_steps=2, average_best=1),
                 fbank / "train.jsonl.gz", fbank / "dev.jsonl.gz", json.loads((fbank / "cmvn.json").read_text()),
                 out, progress=False)  # fmt: skip


def test_train_decode_and_capture_with_pretrained_encoders(tiny_corpus, tmp_path):
    weights = {f: save_pretrained_dir(tmp_path / "weights", f) for f in ("wav2vec2", "hubert")}
    do = _train(tiny_corpus, weights["wav2vec2"], tmp_path / "do")
    so = _train(tiny_corpus, weights["hubert"], tmp_path / "sso", mode="sso", layer_sum=True)
    hyps = decode(do, tiny_corpus / "fbank" / "test.jsonl.gz", tmp_path / "do", split="test", progress=False)
    rows = [json.loads(line) for line in hyps.read_text().splitlines()]
    assert len(rows) == 6 and all(r["surface"] is not None and r["meaning"] is not None for r in rows)
    models = {"do": load_model(do), "sso": load_model(so)}
    batches = list(capture_batches(models, tiny_corpus / "fbank" / "test.jsonl.gz", batch_size=3))
    assert len(batches) == 2
    states = batches[0].models
    assert len(states["do"].encoder["surface"]) == len(states["sso"].encoder["surface"]) == 2
    # The analysis stage's CKA of the two (one frame rate): encoder and decoder rows.
    runs = {name: (read_run_info(path.parent), path) for name, path in (("do", do), ("sso", so))}
    result = analyze_run("en", 0, runs, tiny_corpus / "fbank" / "test.jsonl.gz", batch_size=3,
                         max_utterances=None, device="cpu")  # fmt: skip
    assert result.rows and {r["kind"] for r in result.rows} >= {"encoder", "decoder"}
    conformer = load_model(_conformer(tiny_corpus, tmp_path))
    with pytest.raises(CaptureError, match="different encoder frames"):
        next(capture_batches({"do": models["do"], "conformer": conformer}, tiny_corpus / "fbank" / "test.jsonl.gz"))
    # The run's fingerprint holds the pretrained weights: other weights at the same path are refused.
    save_pretrained_dir(tmp_path / "weights", "wav2vec2")  # new random weights
    with pytest.raises(StaleOutputError):
        _train(tiny_corpus, weights["wav2vec2"], tmp_path / "do")


def _conformer(corpus, tmp_path):
    from tests.decode.test_run import untrained_model

    return untrained_model(corpus, tmp_path / "conformer" / "model.pt")
