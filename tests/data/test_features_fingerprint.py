"""The feature cache and CMVN follow their corpus: a re-imported manifest or
rewritten audio makes them again, an unchanged corpus reuses them."""

from __future__ import annotations

import json

from dualasr.data import manifest as m
from dualasr.data.features import compute_features
from tests.conftest import write_tone


def test_reimported_corpus_or_new_audio_recomputes_features_and_cmvn(tmp_path, utterances, caplog):
    corpus = tmp_path / "corpus"
    m.write_manifest(m.cuts_from_utterances(utterances), corpus / "cuts_train.jsonl.gz")
    fbank = compute_features(corpus, splits=("train",), progress=False)
    feats, cmvn = fbank / "train.jsonl.gz", fbank / "cmvn.json"
    first = json.loads(cmvn.read_text())
    mtimes = feats.stat().st_mtime_ns, cmvn.stat().st_mtime_ns
    compute_features(corpus, splits=("train",), progress=False)
    assert (feats.stat().st_mtime_ns, cmvn.stat().st_mtime_ns) == mtimes  # unchanged corpus: reused

    # `dualasr import --overwrite` of a smaller corpus.
    m.write_manifest(m.cuts_from_utterances(utterances[:3]), corpus / "cuts_train.jsonl.gz", overwrite=True)
    with caplog.at_level("INFO"):
        compute_features(corpus, splits=("train",), progress=False)
    assert len(m.load_manifest(feats, check_audio=False)) == 3
    second = json.loads(cmvn.read_text())
    assert second["frames"] < first["frames"]
    assert f"{feats}: inputs changed since it was made (manifest (content, files, utterances)); recomputing" in caplog.text

    # Same manifest, one recording replaced by another sound of the same length.
    write_tone(tmp_path / "audio" / "en1.wav", 0.4, freq=1000.0)
    compute_features(corpus, splits=("train",), progress=False)
    third = json.loads(cmvn.read_text())
    assert third["frames"] == second["frames"] and third["mean"] != second["mean"]
