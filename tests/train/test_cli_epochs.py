"""`dualasr train` trains as many epochs as `dualasr study` would for the corpus
language: ``study.epochs.<lang>`` where set, else ``train.epochs``."""

from __future__ import annotations

import csv
import shutil

from typer.testing import CliRunner

from dualasr.cli import app


def epochs_logged(out) -> set[str]:
    with open(out / "metrics.csv") as f:
        return {r["epoch"] for r in csv.DictReader(f)}


def test_cli_train_takes_the_languages_study_epochs(run, tmp_path):
    # The tiny corpus is English; train.epochs is 3 in the fixture's config.
    config = tmp_path / "c.yaml"
    config.write_text(run.yaml.read_text() + "study:\n  epochs: {en: 1, ko: 2}\n")
    out = tmp_path / "sso"
    args = ["train", "--data", str(run.corpus), "--out", str(out), "--config", str(config),
            "--model", "sso", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "model.pt").is_file()
    assert epochs_logged(out) == {"1"}


def test_cli_train_needs_no_split_named_test(run, tmp_path):
    """A corpus whose test splits are test_seen / test_unseen trains from the
    command line: training computes the features of train and dev only."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for split in ("train", "dev"):
        shutil.copy(run.corpus / f"cuts_{split}.jsonl.gz", corpus / f"cuts_{split}.jsonl.gz")
    shutil.copy(run.corpus / "cuts_test.jsonl.gz", corpus / "cuts_test_unseen.jsonl.gz")
    config = tmp_path / "c.yaml"
    config.write_text(run.yaml.read_text() + "study:\n  epochs: {en: 1}\n")
    args = ["train", "--data", str(corpus), "--out", str(tmp_path / "sso"), "--config", str(config),
            "--model", "sso", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (corpus / "fbank").glob("*.jsonl.gz")) == ["dev.jsonl.gz", "train.jsonl.gz"]
