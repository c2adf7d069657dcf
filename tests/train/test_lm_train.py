"""`train_lm` on the tiny corpus, loading an LM for a model, and decoding with it."""

from __future__ import annotations

import json

import pytest
import torch

from dualasr.config import DecodeConfig
from dualasr.data.manifest import load_manifest, target_text
from dualasr.decode.run import decode
from dualasr.model.checkpoint import load_model
from dualasr.model.lm import LMError, load_lm
from dualasr.text.tokenizer import Tokenizer
from dualasr.train.lm import perplexity, train_lm
from tests.train.conftest import SMALL_LM as SMALL


def test_training_lowers_dev_perplexity_and_keeps_the_best_epoch(meaning_lm, tiny_corpus):
    ckpt = torch.load(meaning_lm, weights_only=True)
    dev = [h["dev_ppl"] for h in ckpt["history"]]
    assert len(dev) == SMALL.epochs
    assert min(dev) < 0.8 * dev[0]  # 24 training sentences: it learns their characters
    tok = Tokenizer.from_dict(ckpt["tokenizer"])
    dev_seqs = [tok.encode(target_text(c, "meaning", tok.unit))
                for c in load_manifest(tiny_corpus / "fbank" / "dev.jsonl.gz", check_audio=False)]  # fmt: skip
    assert perplexity(load_lm(meaning_lm, tok), dev_seqs) == pytest.approx(min(dev), rel=1e-6)
    rows = (meaning_lm.parent / "metrics.csv").read_text().splitlines()
    assert rows[0] == "epoch,train_ppl,dev_ppl,seconds" and len(rows) == 1 + SMALL.epochs


def test_a_finished_lm_is_not_trained_again(meaning_lm, tiny_corpus):
    before = meaning_lm.stat().st_mtime_ns
    fbank = tiny_corpus / "fbank"
    assert train_lm(fbank / "train.jsonl.gz", fbank / "dev.jsonl.gz", "meaning", meaning_lm.parent, SMALL) == meaning_lm
    assert meaning_lm.stat().st_mtime_ns == before


def test_lm_must_share_the_model_tokens(meaning_lm, reference):
    _, tokenizers = load_model(reference / "model.pt")
    assert load_lm(meaning_lm, tokenizers["meaning"]).vocab == len(tokenizers["meaning"])
    other = Tokenizer.build(["a different corpus"], "char")
    with pytest.raises(LMError, match=r"differ from the ASR model's \d+ char tokens for output 'meaning'"):
        load_lm(meaning_lm, other)


def test_corrupt_lm_is_a_clear_error(tmp_path, reference):
    bad = tmp_path / "lm.pt"
    bad.write_bytes(b"not a checkpoint")
    _, tokenizers = load_model(reference / "model.pt")
    with pytest.raises(LMError, match=f"{bad}: corrupt or unreadable"):
        load_lm(bad, tokenizers["meaning"])


def test_decoding_with_the_lm_records_it_and_changes_scores(meaning_lm, reference, run, tmp_path):
    test = run.corpus / "fbank" / "test.jsonl.gz"
    plain = decode(reference / "model.pt", test, tmp_path / "plain", progress=False)
    cfg = DecodeConfig(lm_weight={"meaning": 0.5})
    fused = decode(reference / "model.pt", test, tmp_path / "fused", cfg, progress=False, lms={"meaning": meaning_lm})
    info = json.loads((tmp_path / "fused" / "decode_test.json").read_text())
    assert info["lms"] == {"meaning": str(meaning_lm)} and info["lm_weight"] == {"meaning": 0.5}
    a = [json.loads(x) for x in plain.read_text().splitlines()]
    b = [json.loads(x) for x in fused.read_text().splitlines()]
    # The surface output has no LM: identical; the meaning scores carry the LM term.
    assert [r["surface"] for r in a] == [r["surface"] for r in b]
    assert [r["scores"]["meaning"]["score"] for r in a] != [r["scores"]["meaning"]["score"] for r in b]


def test_cli_trains_an_lm_and_decodes_with_it(reference, run, tmp_path):
    from typer.testing import CliRunner

    from dualasr.cli import app

    conf = tmp_path / "conf.yaml"
    conf.write_text("decode: {beam: 2, lm_weight: {meaning: 0.4}}\nlm: {embed: 16, hidden: 32, epochs: 2}\n")
    runner = CliRunner()
    lm_dir = tmp_path / "lm"
    result = runner.invoke(app, ["train-lm", "--data", str(run.corpus), "--out", str(lm_dir), "--config", str(conf)])
    assert result.exit_code == 0, result.output
    assert f"language model: {lm_dir / 'lm.pt'}" in result.output
    args = ["decode", "--model", str(reference / "model.pt"), "--data", str(run.corpus), "--out", str(tmp_path / "dec"),
            "--config", str(conf), "--no-progress"]  # fmt: skip
    result = runner.invoke(app, [*args, "--lm", f"meaning={lm_dir / 'lm.pt'}"])
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "dec" / "decode_test.json").read_text())
    assert info["lms"] == {"meaning": str(lm_dir / "lm.pt")} and info["beam"] == 2
    result = runner.invoke(app, [*args, "--lm", str(lm_dir / "lm.pt")])
    assert result.exit_code != 0 and "expected OUTPUT=PATH" in result.output
