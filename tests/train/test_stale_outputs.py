"""A finished stage is reused only for the inputs it was made from: a trained
model of other inputs is refused, hypotheses of another model are made again."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dualasr.cli import app
from dualasr.config import DecodeConfig
from dualasr.decode.run import decode
from dualasr.rundir import StaleOutputError
from dualasr.train.lm import train_lm
from tests.train.test_lm_train import SMALL


def test_cli_train_on_a_finished_do_run_reuses_it_as_do_and_refuses_sso(run, reference):
    model = reference / "model.pt"
    before = model.stat().st_mtime_ns
    args = ["train", "--data", str(run.corpus), "--out", str(reference), "--config", str(run.yaml), "--no-progress"]
    r = CliRunner().invoke(app, [*args, "--model", "do"])  # the reference run's own inputs
    assert r.exit_code == 0 and f"model: {model}" in r.output, r.output
    r = CliRunner().invoke(app, [*args, "--model", "sso"])
    assert r.exit_code == 2
    assert r.output.startswith(f"error: {reference}: model.pt was made from other data/config (model (")
    assert "mode" in r.output and r.output.endswith("); use a new --out or delete it\n")
    assert model.stat().st_mtime_ns == before


def test_decoding_another_model_into_a_run_dir_decodes_that_model(reference, run, tmp_path, caplog):
    test = run.corpus / "fbank" / "test.jsonl.gz"
    cfg = DecodeConfig(beam=1)
    other = sorted((reference / "checkpoints").glob("epoch*.pt"))[0]
    a = decode(reference / "model.pt", test, tmp_path / "a", cfg, progress=False).read_text()
    b = decode(other, test, tmp_path / "b", cfg, progress=False).read_text()
    assert a != b  # two models, two sets of scores
    hyps = tmp_path / "a" / "hyps_test.jsonl"
    mtime = hyps.stat().st_mtime_ns
    assert decode(reference / "model.pt", test, tmp_path / "a", cfg, progress=False) == hyps
    assert hyps.stat().st_mtime_ns == mtime  # same inputs: reused
    with caplog.at_level("INFO"):
        decode(other, test, tmp_path / "a", cfg, progress=False)
    assert hyps.read_text() == b
    assert f"{hyps}: inputs changed since it was made (model); recomputing" in caplog.text


def test_an_lm_of_another_output_is_refused(tiny_corpus, tmp_path):
    fbank = tiny_corpus / "fbank"
    small = SMALL.model_copy(update={"epochs": 1})
    lm = train_lm(fbank / "train.jsonl.gz", fbank / "dev.jsonl.gz", "meaning", tmp_path / "lm", small)
    with pytest.raises(StaleOutputError, match=r"lm.pt was made from other data/config \(output\)"):
        train_lm(fbank / "train.jsonl.gz", fbank / "dev.jsonl.gz", "surface", tmp_path / "lm", small)
    assert train_lm(fbank / "train.jsonl.gz", fbank / "dev.jsonl.gz", "meaning", tmp_path / "lm", small) == lm
