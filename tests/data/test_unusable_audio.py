"""A cut whose audio cannot be read when features are computed is an error
naming it, or with skip_invalid counted and listed: never dropped silently."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dualasr.cli import app
from dualasr.data import manifest as m
from dualasr.data.checks import UnusableCutError
from dualasr.data.features import compute_features

runner = CliRunner()


@pytest.fixture
def corpus(tmp_path, utterances) -> Path:
    """The three English fixture utterances imported as every split."""
    d = tmp_path / "corpus"
    for split in ("train", "dev", "test"):
        m.write_manifest(m.cuts_from_utterances(utterances[:3]), d / f"cuts_{split}.jsonl.gz")
    (tmp_path / "conf.yaml").write_text("seed: 0\n")
    return d


def truncate(path: Path) -> Path:
    """Cut a WAV to a third of its bytes: the header still promises every sample."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def audio(utterances, uid: str) -> Path:
    return Path(next(u.audio for _, u in utterances if u.id == uid))


@pytest.mark.parametrize("damage", ["truncated", "deleted"])
def test_unreadable_audio_is_an_error_naming_cut_and_file(corpus, utterances, damage):
    wav = audio(utterances, "en2")
    truncate(wav) if damage == "truncated" else wav.unlink()
    with pytest.raises(m.ManifestError) as err:
        compute_features(corpus, splits=("train",), progress=False)
    assert "'en2'" in str(err.value) and str(wav) in str(err.value)
    # Found by the header check before extraction (not by Lhotse dropping it later).
    assert ("truncated since import" in str(err.value)) == (damage == "truncated")
    assert not (corpus / "fbank" / "train.jsonl.gz").exists()


@pytest.mark.parametrize("damage", ["truncated", "deleted"])
def test_skip_invalid_counts_lists_and_keeps_the_others(corpus, utterances, damage, caplog):
    wav = audio(utterances, "en2")
    truncate(wav) if damage == "truncated" else wav.unlink()
    with caplog.at_level(logging.WARNING):
        fbank = compute_features(corpus, splits=("train",), progress=False, skip_invalid=True)
    rows = (fbank / "train.skipped.tsv").read_text().splitlines()
    assert rows[0] == "id\tsource\treason"
    assert [r.split("\t")[0] for r in rows[1:]] == ["en2"] and str(wav) in rows[1]
    assert ("truncated since import" in rows[1]) == (damage == "truncated")
    assert "skipped 1 unusable cut(s)" in caplog.text and "train.skipped.tsv" in caplog.text
    cuts = m.load_manifest(fbank / "train.jsonl.gz", check_audio=False)
    assert sorted(cuts.ids) == ["en1", "en3"]
    assert all(c.load_features().shape[1] == 80 for c in cuts)


def test_every_cut_unreadable_is_an_error_even_when_skipping(corpus, utterances):
    for uid in ("en1", "en2", "en3"):
        truncate(audio(utterances, uid))
    with pytest.raises(UnusableCutError, match="no usable cut left, all 3 skipped"):
        compute_features(corpus, splits=("train",), progress=False, skip_invalid=True)


@pytest.fixture
def no_training(monkeypatch) -> dict:
    """``dualasr train`` up to the trainer, which records what it was given."""
    seen: dict = {}

    def fake_train(*args, **kwargs):
        seen.update(kwargs)
        return Path("model.pt")

    monkeypatch.setattr("dualasr.train.trainer.train", fake_train)
    return seen


def test_cli_train_unreadable_audio_one_line_exit_2(corpus, utterances, tmp_path, no_training):
    wav = truncate(audio(utterances, "en2"))
    args = ["train", "--data", str(corpus), "--out", str(tmp_path / "exp"), "--config", str(tmp_path / "conf.yaml")]
    r = runner.invoke(app, [*args, "--no-progress"])
    assert r.exit_code == 2, r.output
    error = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(error) == 1 and "'en2'" in error[0] and str(wav) in error[0]
    assert not no_training
    r = runner.invoke(app, [*args, "--no-progress", "--skip-invalid"])
    assert r.exit_code == 0, r.output
    assert no_training["data"].skip_invalid
    assert (corpus / "fbank" / "train.skipped.tsv").read_text().count("en2\t") == 1


def test_cli_no_progress_silences_feature_extraction(corpus, tmp_path, no_training):
    base = ["train", "--data", str(corpus), "--config", str(tmp_path / "conf.yaml")]
    r = runner.invoke(app, [*base, "--out", str(tmp_path / "a"), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "Extracting and storing features" not in r.output
    for f in (corpus / "fbank").iterdir():  # the cache would skip extraction
        f.unlink()
    r = runner.invoke(app, [*base, "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    assert "Extracting and storing features" in r.output


def test_a_cut_lhotse_drops_while_extracting_is_named(corpus, monkeypatch):
    """Any other loading failure Lhotse suppresses (its extraction returns the
    other cuts only) is found by comparing ids, with Lhotse's reason."""
    from lhotse import MonoCut
    from lhotse.audio.utils import AudioLoadingError

    load_audio = MonoCut.load_audio

    def failing(self, *args, **kwargs):
        if self.id == "en3":
            raise AudioLoadingError("decoder gave up")
        return load_audio(self, *args, **kwargs)

    monkeypatch.setattr(MonoCut, "load_audio", failing)
    with pytest.raises(UnusableCutError, match=r"cut 'en3' \(.*en3\.wav\): audio cannot be read .*decoder gave up"):
        compute_features(corpus, splits=("train",), progress=False)
    fbank = compute_features(corpus, splits=("train",), progress=False, skip_invalid=True)
    assert sorted(m.load_manifest(fbank / "train.jsonl.gz", check_audio=False).ids) == ["en1", "en2"]
    assert (fbank / "train.skipped.tsv").read_text().splitlines()[1].startswith("en3\t")
