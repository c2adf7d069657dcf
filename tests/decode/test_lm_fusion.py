"""Shallow fusion of a token LM in the joint CTC/attention beam search."""

import pytest
import torch

from dualasr.decode import beam_search
from dualasr.model import build_model
from dualasr.model.lm import LMConfig, TokenLM


@pytest.fixture
def model(tiny_config, vocab):
    torch.manual_seed(0)
    return build_model(tiny_config("do", weights={"ctc_meaning": 0.2}), vocab).eval()


def certain_lm(vocab: int, token: int) -> TokenLM:
    """An LM that gives ``token`` probability ~1 after any prefix."""
    lm = TokenLM(vocab, LMConfig(embed=4, hidden=4))
    with torch.no_grad():
        lm.out.weight.zero_()
        lm.out.bias.fill_(-30.0)
        lm.out.bias[token] = 30.0
    return lm.eval()


@pytest.mark.parametrize("ctc_weight", [0.0, 0.3])
def test_weight_zero_is_the_search_without_lm(model, random_batch, vocab, ctc_weight):
    feats, lens, _ = random_batch()
    enc = model.encode(feats, lens)
    lm = certain_lm(vocab["surface"], 3)
    plain = beam_search(model, enc, "surface", beam=3, ctc_weight=ctc_weight)
    fused = beam_search(model, enc, "surface", beam=3, ctc_weight=ctc_weight, lm=lm, lm_weight=0.0)
    assert [h.tokens for h in fused] == [h.tokens for h in plain]
    assert [h.score for h in fused] == [h.score for h in plain]


def test_an_lm_certain_of_eos_ends_every_hypothesis_at_once(model, random_batch, vocab):
    feats, lens, _ = random_batch()
    enc = model.encode(feats, lens)
    eos = model.sos_eos["meaning"]
    plain = beam_search(model, enc, "meaning", beam=3, ctc_weight=0.0)
    assert any(h.tokens for h in plain)  # the untrained decoder writes something
    fused = beam_search(model, enc, "meaning", beam=3, ctc_weight=0.0, lm=certain_lm(vocab["meaning"], eos), lm_weight=1.0)
    assert [h.tokens for h in fused] == [[] for _ in plain]


def test_an_lm_certain_of_a_token_writes_it_until_max_len(model, random_batch, vocab):
    feats, lens, _ = random_batch()
    enc = model.encode(feats, lens)
    fused = beam_search(model, enc, "surface", beam=2, ctc_weight=0.0, max_len_ratio=0.2,
                        lm=certain_lm(vocab["surface"], 4), lm_weight=5.0)  # fmt: skip
    max_len = (enc.lens.float() * 0.2).long().clamp_min(1).tolist()
    # eos is forced at max_len, so max_len - 1 tokens, every one the LM's.
    assert [h.tokens for h in fused] == [[4] * (m - 1) for m in max_len]


def test_lm_of_another_vocabulary_is_an_error(model, random_batch, vocab):
    feats, lens, _ = random_batch()
    enc = model.encode(feats, lens)
    with pytest.raises(ValueError, match="language model has 7 tokens"):
        beam_search(model, enc, "surface", lm=certain_lm(7, 3), lm_weight=0.5)
