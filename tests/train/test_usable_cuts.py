"""Training refuses utterances over the length limit by name (or skips and
lists them) and records its data's language in every checkpoint."""

from __future__ import annotations

import pytest
import torch

from dualasr.config import DataConfig
from dualasr.data.checks import UnusableCutError
from dualasr.data.manifest import load_manifest


def longest_two(manifest):
    return sorted(load_manifest(manifest, check_audio=False), key=lambda c: c.duration, reverse=True)[:2]


def test_an_utterance_over_the_limit_is_refused_by_name(run, tmp_path):
    longest, second = longest_two(run.corpus / "fbank" / "train.jsonl.gz")
    limit = (longest.duration + second.duration) / 2
    with pytest.raises(UnusableCutError, match=rf"train.jsonl.gz: cut '{longest.id}' .*longer than data.max_utterance_seconds"):
        run(tmp_path / "exp", data=DataConfig(max_utterance_seconds=limit))
    assert not (tmp_path / "exp" / "checkpoints").exists()


def test_skipped_long_utterances_are_listed_and_the_language_recorded(run, tmp_path):
    longest, second = longest_two(run.corpus / "fbank" / "train.jsonl.gz")
    dev_longest = longest_two(run.corpus / "fbank" / "dev.jsonl.gz")[0]
    limit = (longest.duration + second.duration) / 2
    last = run(tmp_path / "exp", data=DataConfig(max_utterance_seconds=limit, skip_invalid=True), stop_after_epoch=1)
    rows = (tmp_path / "exp" / "train.skipped.tsv").read_text().splitlines()
    skipped = {r.split("\t")[0] for r in rows[1:]}
    assert longest.id in skipped and second.id not in skipped
    assert (dev_longest.id in skipped) == (dev_longest.duration > limit)
    assert torch.load(last, map_location="cpu", weights_only=True)["language"] == "en"
