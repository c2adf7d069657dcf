"""Building blocks shared by the encoder and the decoders.

Masks are boolean with ``True`` for *valid* positions (the opposite of
ESPnet's ``make_pad_mask``), because that is what
``torch.nn.functional.scaled_dot_product_attention`` expects.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def lengths_to_mask(lens: Tensor, max_len: int | None = None) -> Tensor:
    """``(batch,)`` lengths -> ``(batch, max_len)`` bool mask, True on valid positions."""
    max_len = int(lens.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lens.device)[None, :] < lens[:, None]


def sinusoid_table(positions: Tensor, dim: int) -> Tensor:
    """Sinusoidal embeddings (Vaswani et al. 2017, sec. 3.5) of ``positions``.

    ``positions``: float ``(n,)``; returns ``(n, dim)`` with
    ``[2i] = sin(p / 10000^(2i/dim))`` and ``[2i+1] = cos(...)``.
    """
    inv_freq = torch.exp(
        torch.arange(0, dim, 2, dtype=torch.float32, device=positions.device)
        * (-math.log(10000.0) / dim)
    )
    angles = positions.float()[:, None] * inv_freq[None, :]
    table = torch.zeros(len(positions), dim, device=positions.device)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles)
    return table


class FeedForward(nn.Module):
    """Position-wise FFN ``Linear(d, ffn) -> act -> dropout -> Linear(ffn, d)``."""

    def __init__(self, d_model: int, ffn_dim: int, dropout: float, activation: nn.Module):
        super().__init__()
        self.w1 = nn.Linear(d_model, ffn_dim)
        self.act = activation
        self.dropout = nn.Dropout(dropout)
        self.w2 = nn.Linear(ffn_dim, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(self.dropout(self.act(self.w1(x))))


class MultiHeadAttention(nn.Module):
    """Scaled dot-product multi-head attention (Vaswani et al. 2017).

    Used by the decoders; projections are separate so that the decoder can
    cache keys and values during incremental search.
    """

    def __init__(self, d_model: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.d_k = heads, d_model // heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def split(self, x: Tensor) -> Tensor:
        """``(batch, n, d_model)`` -> ``(batch, heads, n, d_k)``."""
        return x.view(x.size(0), x.size(1), self.heads, self.d_k).transpose(1, 2)

    def project_kv(self, kv: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values ``(batch, heads, n, d_k)`` of ``kv`` ``(batch, n, d_model)``."""
        return self.split(self.k(kv)), self.split(self.v(kv))

    def attend(self, query: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """``query`` ``(batch, n_q, d_model)`` over projected ``k, v``.

        ``mask``: bool, broadcastable to ``(batch, heads, n_q, n_k)``, True =
        may attend. Every query row must have at least one True.
        """
        q = self.split(self.q(query))
        p = self.dropout if self.training else 0.0
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.out(ctx.transpose(1, 2).reshape(query.size(0), query.size(1), -1))

    def forward(self, query: Tensor, kv: Tensor, mask: Tensor | None) -> Tensor:
        return self.attend(query, *self.project_kv(kv), mask)


class RelPositionalEncoding(nn.Module):
    """Relative sinusoidal positions for :class:`RelPositionMultiHeadAttention`.

    Scales the input by ``sqrt(d_model)`` (as ESPnet's ``RelPositionalEncoding``)
    and returns the embeddings of the relative distances ``T-1, ..., 0, ...,
    -(T-1)``, shape ``(1, 2T-1, d_model)``; computed on the fly, so any length works.
    """

    def __init__(self, d_model: int, dropout: float):
        super().__init__()
        self.d_model = d_model
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        t = x.size(1)
        rel = torch.arange(t - 1, -t, -1, device=x.device)
        pos = sinusoid_table(rel, self.d_model).to(x.dtype)[None]
        return self.dropout(x * math.sqrt(self.d_model)), self.dropout(pos)


class RelPositionMultiHeadAttention(MultiHeadAttention):
    """Self-attention with Transformer-XL relative positions (Dai et al. 2019, sec. 3.3),
    as in ESPnet's ``RelPositionMultiHeadedAttention`` (the "latest" variant used by
    its Conformer).

    score(i, j) = (q_i + u)·k_j + (q_i + v)·W_p p_{i-j}, divided by sqrt(d_k),
    with learnt per-head biases ``u`` (``pos_bias_u``) and ``v`` (``pos_bias_v``)
    and ``p_{i-j}`` the sinusoidal embedding of the distance ``i - j``.
    """

    def __init__(self, d_model: int, heads: int, dropout: float):
        super().__init__(d_model, heads, dropout)
        self.pos = nn.Linear(d_model, d_model, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(heads, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.empty(heads, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)
        self.attn_dropout = nn.Dropout(dropout)

    @staticmethod
    def rel_shift(x: Tensor) -> Tensor:
        """``(b, h, T, 2T-1)`` scores against distances ``T-1 .. -(T-1)`` ->
        ``(b, h, T, T)`` with ``out[..., i, j] = x[..., i, T-1-(i-j)]``.

        The pad-and-reshape trick of Transformer-XL: one extra column makes
        row ``i`` start ``T-1-i`` places further along the flattened buffer.
        """
        b, h, t, n = x.shape
        x = torch.cat([x.new_zeros(b, h, t, 1), x], dim=-1).view(b, h, n + 1, t)
        return x[:, :, 1:].reshape(b, h, t, n)[..., :t]

    def forward(self, x: Tensor, pos_emb: Tensor, mask: Tensor) -> Tensor:  # type: ignore[override]
        """``x`` ``(batch, T, d)``, ``pos_emb`` ``(1, 2T-1, d)``, ``mask`` ``(batch, T)``
        key mask (True = valid) -> ``(batch, T, d)``.

        The position term ``(q_i + v)·W_p p_{i-j} / sqrt(d_k)`` goes to
        ``scaled_dot_product_attention`` as an additive bias (``-inf`` on padded
        keys, which then get exactly zero weight, as ESPnet zeroes them), and
        the kernel does the content term, softmax and weighted sum in one op:
        no separate score and weight tensors to store for the backward.
        """
        b, t, _ = x.shape
        q = self.q(x).view(b, t, self.heads, self.d_k)
        k, v = self.project_kv(x)
        p = self.pos(pos_emb).view(1, -1, self.heads, self.d_k).transpose(1, 2)
        bd = self.rel_shift(torch.matmul((q + self.pos_bias_v).transpose(1, 2), p.transpose(-2, -1)))
        bias = (bd / math.sqrt(self.d_k)).masked_fill(~mask[:, None, None, :], float("-inf"))
        drop = self.attn_dropout.p if self.training else 0.0
        ctx = F.scaled_dot_product_attention((q + self.pos_bias_u).transpose(1, 2), k, v, attn_mask=bias, dropout_p=drop)
        return self.out(ctx.transpose(1, 2).reshape(b, t, -1))
