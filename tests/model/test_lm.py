import math

import pytest
import torch
import torch.nn.functional as F

from dualasr.model.lm import LMConfig, TokenLM

VOCAB = 9  # ids 0 blank, 1 unk, 2..7 units, 8 sos/eos


@pytest.fixture
def lm():
    torch.manual_seed(0)
    return TokenLM(VOCAB, LMConfig(embed=8, hidden=16, layers=2)).eval()


def test_loss_is_mean_token_nll_with_eos_against_a_hand_computation(lm):
    ys = torch.tensor([[2, 3, 4], [5, 6, -1]])
    lens = torch.tensor([3, 2])
    loss, stats = lm(ys, lens)
    nll, tokens = 0.0, 0
    for seq in ([2, 3, 4], [5, 6]):
        inp = torch.tensor([[VOCAB - 1, *seq]])
        logp = F.log_softmax(lm.out(lm.lstm(lm.embed(inp))[0]), dim=-1)[0]
        target = [*seq, VOCAB - 1]
        nll -= sum(float(logp[i, t]) for i, t in enumerate(target))
        tokens += len(target)
    assert stats["tokens"] == tokens == 7
    assert float(loss) == pytest.approx(nll / tokens, rel=1e-5)
    assert stats["ppl"] == pytest.approx(math.exp(nll / tokens), rel=1e-5)


def test_padding_does_not_change_the_loss(lm):
    short, _ = lm(torch.tensor([[5, 6]]), torch.tensor([2]))
    padded, _ = lm(torch.tensor([[5, 6, -1, -1]]), torch.tensor([2]))
    assert float(short) == pytest.approx(float(padded), rel=1e-6)


def test_step_by_step_scores_equal_the_teacher_forced_pass(lm):
    seq = [2, 7, 3]
    inp = torch.tensor([[VOCAB - 1, *seq]])
    full = F.log_softmax(lm.out(lm.lstm(lm.embed(inp))[0]), dim=-1)[0]
    state = lm.init_state(1)
    for i, tok in enumerate([VOCAB - 1, *seq]):
        logp, state = lm.step(torch.tensor([tok]), state)
        torch.testing.assert_close(logp[0], full[i], rtol=1e-5, atol=1e-5)


def test_select_reorders_hypotheses(lm):
    state = lm.init_state(3)
    _, state = lm.step(torch.tensor([2, 3, 4]), state)
    picked = state.select(torch.tensor([2, 2, 0]))
    torch.testing.assert_close(picked.h[:, 0], state.h[:, 2])
    torch.testing.assert_close(picked.c[:, 2], state.c[:, 0])
