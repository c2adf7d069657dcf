"""Token-level LSTM language model for shallow fusion in beam search.

As ESPnet's ``lm: seq_rnn`` (an LSTM over the ASR output's own tokens, trained
on the training transcripts and added to the beam score with ``lm_weight``):
input ``[sos, y1..yn]``, target ``[y1..yn, eos]``, with ``<sos/eos>`` the
tokenizer's last id. Text-only training costs a fraction of acoustic training,
so within a small budget the LM sees each sentence many more times than the
attention decoder does; fusion adds ``lm_weight * log p_lm(c | prefix)`` to
every candidate token's joint score (:func:`dualasr.decode.search.beam_search`).

``forward`` returns ``(loss, stats)`` like the ASR model; decoding uses
:meth:`TokenLM.init_state`, :meth:`TokenLM.step` and :meth:`LMState.select`,
on a model read by :func:`load_lm` from an ``lm.pt`` that
:func:`dualasr.train.lm.train_lm` wrote.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dualasr.text.tokenizer import Tokenizer

from .asr import IGNORE_ID, add_sos_eos
from .checkpoint import CheckpointError, load_checkpoint
from .config import LMConfig


@dataclass
class LMState:
    """LSTM hidden and cell states of ``n`` hypotheses, ``(layers, n, hidden)`` each."""

    h: Tensor
    c: Tensor

    def select(self, index: Tensor) -> LMState:
        """Row ``i`` of the result is row ``index[i]`` (beam reordering)."""
        return LMState(self.h.index_select(1, index), self.c.index_select(1, index))


class TokenLM(nn.Module):
    """Embedding, LSTM, projection to the vocabulary (``vocab`` ids, sos/eos last)."""

    def __init__(self, vocab: int, cfg: LMConfig):
        super().__init__()
        self.vocab, self.sos_eos = vocab, vocab - 1
        self.embed = nn.Embedding(vocab, cfg.embed)
        self.lstm = nn.LSTM(cfg.embed, cfg.hidden, cfg.layers, batch_first=True,
                            dropout=cfg.dropout if cfg.layers > 1 else 0.0)  # fmt: skip
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.hidden, vocab)

    def forward(self, ys: Tensor, lens: Tensor) -> tuple[Tensor, dict[str, float]]:
        """``ys`` ``(batch, L)`` ids padded with -1, ``lens`` ``(batch,)`` ->
        summed negative log-likelihood over tokens (eos included) / tokens,
        and ``{"loss", "ppl", "tokens"}``."""
        ys_in, ys_out = add_sos_eos(ys, lens, self.sos_eos)
        h, _ = self.lstm(self.drop(self.embed(ys_in)))
        logits = self.out(self.drop(h))
        tokens = int((lens + 1).sum())
        nll = F.cross_entropy(logits.reshape(-1, self.vocab).float(), ys_out.reshape(-1),
                              ignore_index=IGNORE_ID, reduction="sum")  # fmt: skip
        loss = nll / tokens
        value = float(loss.detach())
        return loss, {"loss": value, "ppl": math.exp(value), "tokens": tokens}

    def init_state(self, n: int, device: torch.device | str = "cpu") -> LMState:
        shape = (self.lstm.num_layers, n, self.lstm.hidden_size)
        return LMState(torch.zeros(shape, device=device), torch.zeros(shape, device=device))

    def step(self, last: Tensor, state: LMState) -> tuple[Tensor, LMState]:
        """Log-probabilities ``(n, vocab)`` of the next token after ``last`` ``(n,)``."""
        h, (hn, cn) = self.lstm(self.embed(last)[:, None], (state.h, state.c))
        return F.log_softmax(self.out(h[:, 0]).float(), dim=-1), LMState(hn, cn)


class LMError(CheckpointError):
    """A language model that cannot be used (corrupt, or not for this ASR model's tokens)."""


def load_lm(path: str | Path, tokenizer: Tokenizer, device: torch.device | str = "cpu") -> TokenLM:
    """The LM at ``path``, in eval mode, checked to use ``tokenizer``'s ids."""
    ckpt = read_lm_checkpoint(path, tokenizer)
    lm = TokenLM(len(tokenizer), LMConfig.model_validate(ckpt["lm_config"]))
    lm.load_state_dict(ckpt["model"])
    return lm.to(device).eval()


def read_lm_checkpoint(path: str | Path, tokenizer: Tokenizer) -> dict:
    """The verified checkpoint dict of the LM at ``path``; an :class:`LMError`
    when its tokens (ids and unit) are not ``tokenizer``'s."""
    ckpt = load_checkpoint(path, required=("model", "lm_config", "tokenizer", "output"), error=LMError)
    lm_tok = Tokenizer.from_dict(ckpt["tokenizer"])
    if lm_tok.tokens != tokenizer.tokens or lm_tok.unit != tokenizer.unit:
        raise LMError(
            f"{path}: the language model's {len(lm_tok)} {lm_tok.unit} tokens differ from the "
            f"ASR model's {len(tokenizer)} {tokenizer.unit} tokens for output {ckpt['output']!r}; "
            "train the LM on the same training split and text settings"
        )
    return ckpt
