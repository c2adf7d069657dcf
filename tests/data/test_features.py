"""Feature cache: the stored features load from any working directory."""

from __future__ import annotations

import numpy as np

from dualasr.data import manifest as m
from dualasr.data.features import compute_features


def test_features_load_from_another_working_directory(tmp_path, utterances, monkeypatch):
    corpus = tmp_path / "runs" / "corpus"
    corpus.mkdir(parents=True)
    for split in ("train", "dev"):
        m.write_manifest(m.cuts_from_utterances(utterances), corpus / f"cuts_{split}.jsonl.gz")
    # A study run from its parent directory passes a relative corpus path.
    monkeypatch.chdir(tmp_path)
    fbank = compute_features("runs/corpus", splits=("train", "dev"), progress=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cuts = m.load_manifest(tmp_path / fbank / "train.jsonl.gz", check_audio=False)
    feats = [c.load_features() for c in cuts]
    assert len(feats) == len(utterances)
    assert all(f.shape[1] == 80 and np.isfinite(f).all() for f in feats)
