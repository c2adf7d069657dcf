"""Subword (sentencepiece) outputs through training, checkpoints and decoding."""

from __future__ import annotations

import json

from dualasr.config import TextConfig
from dualasr.decode.run import decode
from dualasr.model.checkpoint import load_model
from dualasr.text.tokenizer import SPACE, Tokenizer


def test_subword_meaning_trains_saves_and_decodes(run, tmp_path):
    out = tmp_path / "do"
    text = TextConfig(subword={"en": {"meaning": 60}})
    # (one intra-op thread: tests/torch_fixtures.py's autouse ``one_thread``)
    model_path = run(out, train_cfg=run.train_cfg.model_copy(update={"epochs": 1, "average_best": 1}), text=text)
    saved = {o: Tokenizer.load(out / f"tokens_{o}.json") for o in ("surface", "meaning")}
    assert saved["meaning"].unit == "subword" and saved["surface"].unit == "char"

    model, tokenizers = load_model(model_path)
    meaning = tokenizers["meaning"]
    assert meaning.unit == "subword" and meaning.tokens == saved["meaning"].tokens
    assert any(len(t) > 2 and t.startswith(SPACE) for t in meaning.tokens)  # word-sized pieces
    # The meaning decoder's output layer has the subword vocabulary, not the characters'.
    assert model.decoders["meaning"].out.out_features == len(meaning) != len(tokenizers["surface"])
    # The checkpoint carries the sentencepiece model: it encodes without the tokens file.
    (out / "tokens_meaning.json").unlink()
    sentence = "she found the red boxes"
    assert load_model(model_path)[1]["meaning"].encode(sentence) == saved["meaning"].encode(sentence)

    hyps = decode(model_path, run.corpus / "fbank" / "test.jsonl.gz", tmp_path / "dec", progress=False)
    rows = [json.loads(line) for line in hyps.read_text().splitlines()]
    assert len(rows) == 6 and all(isinstance(r["meaning"], str) and SPACE not in r["meaning"] for r in rows)
