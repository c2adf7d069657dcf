"""Search: CTC greedy decoding and joint CTC/attention beam search.

Beam search follows the hybrid CTC/attention decoding of Watanabe et al.
(2017, "Hybrid CTC/attention architecture for end-to-end speech recognition",
sec. IV-B; ESPnet's ``BatchBeamSearch`` + ``CTCPrefixScoreTH``)::

    score(h) = (1 - lambda) * log p_att(h | x) + lambda * log p_ctc(h... | x)

where the CTC term is the prefix probability ``psi`` of Algorithm 2, updated
one token at a time. It is batched: ``batch x beam`` hypotheses advance
together, the decoder uses a key/value cache, and the CTC prefix recursion is
vectorised over hypotheses and candidate tokens (Seki et al. 2019). Only the
``pre_beam_ratio * beam`` best tokens of the attention decoder (plus eos) are
CTC-scored at each step, as ESPnet's pre-beam; with ``ctc_weight = 1`` the
decoder is not run and the whole vocabulary is scored (CTC prefix beam search).

A token language model can be fused (shallow fusion, ESPnet's ``lm_weight``):
``score(h) += beta * log p_lm(h)``, the LM advanced one token at a time beside
the decoder, and the pre-beam then ranks tokens by the decoder and LM scores
together (ESPnet's ``pre_beam_score_key: full``).

Beam management follows whisper's ``BeamSearchDecoder``: the beam stays full,
a hypothesis ending in eos is kept if it ranks among the top ``beam``
candidates, and an utterance stops once it has ``beam`` finished hypotheses or
reaches ``max_len``, where eos is forced. The finished hypotheses are ranked by
the length-normalised score (see :func:`length_normalised`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from dualasr.model.asr import BLANK, DualASR
from dualasr.model.conformer import EncoderOutput
from dualasr.model.layers import lengths_to_mask
from dualasr.model.lm import TokenLM

#: Finite log(0): keeps differences such as ``psi(h) - psi(g)`` free of ``inf - inf``.
LOGZERO = -1e10


@dataclass(frozen=True)
class Hypothesis:
    """One decoded sequence.

    tokens:    output ids without sos/eos.
    score:     ranking score: joint log score (eos included) after length normalisation.
    att_score: summed attention log-probabilities (0 if the decoder was not used).
    ctc_score: summed CTC prefix-score increments = ``log p_ctc(tokens | x)``
               (0 if CTC was not used).
    """

    tokens: list[int]
    score: float
    att_score: float
    ctc_score: float


def length_normalised(score: float, n_tokens: int, length_penalty: float | None) -> float:
    """Ranking score of a finished hypothesis with ``n_tokens`` ids plus eos.

    ``None``: ``score / (n_tokens + 1)`` (mean log score per emitted symbol);
    a float ``a``: the GNMT penalty ``score / ((5 + n_tokens + 1) / 6) ** a``
    (Wu et al. 2016, eq. 14), so ``a = 0`` ranks by the raw score.
    """
    length = n_tokens + 1
    if length_penalty is None:
        return score / length
    return score / ((5 + length) / 6) ** length_penalty


@dataclass
class CTCState:
    """CTC prefix state of ``n`` hypotheses ``g``.

    r:      ``(frames, 2, n)`` log forward variables ``r_t^n(g)``, ``r_t^b(g)``
            (paths over frames ``0..t`` emitting ``g``, ending in a non-blank / blank).
    psi:    ``(n,)`` log prefix probability of ``g``.
    last:   ``(n,)`` last token of ``g`` (-1 for the empty prefix).
    rows:   ``(n,)`` utterance index of each hypothesis.
    length: number of tokens in ``g`` (equal for all hypotheses).
    """

    r: Tensor
    psi: Tensor
    last: Tensor
    rows: Tensor
    length: int


class CTCPrefixScorer:
    """Vectorised CTC prefix scores (Watanabe et al. 2017, Algorithm 2).

    For a prefix ``g`` and a candidate ``c`` (``h = g + c``)::

        phi_t   = r_t^b(g) + [c != last(g)] r_t^n(g)            (log-sum)
        r_t^n(h) = (r_{t-1}^n(h) (+) phi_{t-1}) + x_t(c)
        r_t^b(h) = (r_{t-1}^n(h) (+) r_{t-1}^b(h)) + x_t(blank)
        psi(h)  = (+)_t phi_{t-1} + x_t(c)      (plus x_0(c) if g is empty)
        psi(g + eos) = r_T^n(g) (+) r_T^b(g)   = log p_ctc(g | x)

    ``log_probs`` ``(batch, frames, vocab)`` CTC log-posteriors, ``lens``
    ``(batch,)``. Frames past an utterance's end are set to ``P(blank) = 1`` so
    every utterance runs the same recursion (as ESPnet's ``CTCPrefixScoreTH``).
    """

    def __init__(self, log_probs: Tensor, lens: Tensor, eos: int, blank: int = BLANK):
        t = log_probs.size(1)
        pad = ~lengths_to_mask(lens, t)[:, :, None]
        x = log_probs.float().masked_fill(pad, LOGZERO)
        x[:, :, blank] = x[:, :, blank].masked_fill(pad[:, :, 0], 0.0)
        self.x = x.transpose(0, 1)  # (frames, batch, vocab)
        self.end = lens - 1
        self.eos, self.blank = eos, blank

    def initial_state(self, n_hyps: int) -> CTCState:
        """State of the empty prefix, ``n_hyps`` copies per utterance."""
        t, b, _ = self.x.shape
        rows = torch.arange(b, device=self.x.device).repeat_interleave(n_hyps)
        r = torch.full((t, 2, len(rows)), LOGZERO, device=self.x.device)
        r[:, 1] = torch.cumsum(self.x[:, rows, self.blank], dim=0)
        psi = torch.zeros(len(rows), device=self.x.device)
        last = torch.full_like(rows, -1)
        return CTCState(r, psi, last, rows, 0)

    def score(self, state: CTCState, cands: Tensor) -> tuple[Tensor, Tensor]:
        """Log prefix probabilities ``psi(g + c)`` ``(n, k)`` of candidates
        ``cands`` ``(n, k)``, and their forward variables ``(frames, 2, n, k)``."""
        t_max = self.x.size(0)
        xs = self.x[:, state.rows[:, None], cands]  # (frames, n, k)
        xb = self.x[:, state.rows, self.blank][:, :, None]  # (frames, n, 1)
        r_sum = torch.logaddexp(state.r[:, 0], state.r[:, 1])  # (frames, n)
        # A repeated label needs a blank in between, so only r^b(g) may precede it.
        repeat = (cands == state.last[:, None])[None]
        phi = torch.where(repeat, state.r[:, 1, :, None], r_sum[:, :, None])
        r = torch.full((t_max, 2, *cands.shape), LOGZERO, device=xs.device)
        start = max(state.length, 1)
        if state.length == 0:
            r[0, 0] = xs[0]
        for t in range(start, t_max):
            r[t, 0] = torch.logaddexp(r[t - 1, 0], phi[t - 1]) + xs[t]
            r[t, 1] = torch.logaddexp(r[t - 1, 0], r[t - 1, 1]) + xb[t]
        if start - 1 < t_max:
            terms = torch.cat([r[start - 1, 0][None], phi[start - 1 : t_max - 1] + xs[start:]])
            psi = torch.logsumexp(terms, dim=0)
        else:  # the prefix is already longer than the utterance
            psi = torch.full(cands.shape, LOGZERO, device=xs.device)
        n = torch.arange(len(state.rows), device=xs.device)
        p_full = r_sum[self.end[state.rows], n]  # log p_ctc(g | x), read at the last valid frame
        psi = torch.where(cands == self.eos, p_full[:, None], psi)
        psi = torch.where(cands == self.blank, torch.full_like(psi, LOGZERO), psi)
        return psi, r

    @staticmethod
    def select(
        state: CTCState, cands: Tensor, psi: Tensor, r: Tensor, hyp: Tensor, col: Tensor
    ) -> CTCState:
        """State of the extended prefixes ``g[hyp] + cands[hyp, col]``."""
        return CTCState(
            r[:, :, hyp, col], psi[hyp, col], cands[hyp, col], state.rows[hyp], state.length + 1
        )


@torch.no_grad()
def beam_search(
    model: DualASR,
    enc: EncoderOutput,
    output: str,
    beam: int = 10,
    ctc_weight: float = 0.3,
    length_penalty: float | None = None,
    max_len_ratio: float = 1.0,
    pre_beam_ratio: float = 1.5,
    lm: TokenLM | None = None,
    lm_weight: float = 0.0,
) -> list[Hypothesis]:
    """Best hypothesis per utterance for ``output``, from an encoder pass ``enc``.

    ``ctc_weight`` is lambda above (0: attention only; 1: CTC prefix search
    only, the decoder is not run). ``max_len_ratio`` bounds the hypothesis
    length (eos included) at ``ratio * encoder frames``, at least 1 (``<= 0``:
    the encoder length). ``length_penalty``: see :func:`length_normalised`.
    ``beam=1, ctc_weight=0`` is greedy attention decoding. With ``lm`` and
    ``lm_weight > 0`` (shallow fusion, ESPnet's ``lm_weight``), every candidate's
    joint score gains ``lm_weight * log p_lm(c | prefix)``; the LM must use the
    output's token ids.
    """
    if not 0.0 <= ctc_weight <= 1.0:
        raise ValueError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
    if ctc_weight > 0 and output not in model.ctcs:
        raise ValueError(f"output {output!r} has no CTC head; use ctc_weight=0")
    memory, lens = enc.out[output], enc.lens
    b, w, device = memory.size(0), beam, memory.device
    eos = model.sos_eos[output]
    decoder = model.decoders[output]
    vocab = decoder.out.out_features
    rows = torch.arange(b, device=device).repeat_interleave(w)  # utterance of each hypothesis

    if lm_weight < 0:
        raise ValueError(f"lm_weight must be >= 0, got {lm_weight}")
    if lm is not None and lm.vocab != vocab:
        raise ValueError(f"the language model has {lm.vocab} tokens, output {output!r} has {vocab}")
    use_att, use_ctc = ctc_weight < 1.0, ctc_weight > 0.0
    use_lm = lm is not None and lm_weight > 0
    state = decoder.init_state(memory[rows], enc.mask[rows]) if use_att else None
    if use_ctc:
        # A hierarchical surface CTC reads an intermediate block, not the decoder's memory.
        scorer = CTCPrefixScorer(model.ctcs[output].log_probs(enc.ctc_in[output]), lens, eos)
        ctc_state = scorer.initial_state(w)
    if not use_att:  # every non-blank, non-eos token is a candidate
        everything = torch.tensor([v for v in range(vocab) if v not in (BLANK, eos)], device=device)
    if use_att:  # attention-only search needs no more than `beam` candidates per hypothesis
        k = min(w if not use_ctc else max(1, int(pre_beam_ratio * w)), vocab - 2)
    else:
        k = vocab - 2

    n = b * w
    last = torch.full((n,), eos, dtype=torch.long, device=device)
    tokens = torch.zeros((n, 0), dtype=torch.long, device=device)
    # Only the first slot of each utterance is alive at the start.
    score = torch.zeros(b, w, device=device)
    score[:, 1:] = float("-inf")
    score = score.view(-1)
    att_sum, ctc_sum = torch.zeros(n, device=device), torch.zeros(n, device=device)
    max_len = lens if max_len_ratio <= 0 else (lens.float() * max_len_ratio).long()
    max_len = max_len.clamp_min(1).tolist()
    finished: list[list[Hypothesis]] = [[] for _ in range(b)]
    done = torch.zeros(b, dtype=torch.bool, device=device)
    is_eos_col = torch.zeros(k + 1, dtype=torch.bool, device=device)
    is_eos_col[-1] = True  # the last candidate column is always eos

    lm_state = lm.init_state(n, device) if use_lm else None
    for step in range(max(max_len)):
        if use_lm:
            lm_logp, lm_state = lm.step(last, lm_state)
        if use_att:
            logits, state = decoder.step(last, state)
            att = F.log_softmax(logits.float(), dim=-1)
            att[:, BLANK] = float("-inf")
            # Pre-beam on the full scorers, as ESPnet's pre_beam_score_key "full":
            # the decoder and, when fused, the LM (CTC scores only the survivors).
            pre = (1 - ctc_weight) * att + lm_weight * lm_logp if use_lm else att.clone()
            pre[:, eos] = float("-inf")  # eos enters through its own column
            cands = pre.topk(k, dim=-1).indices
        else:
            cands = everything.expand(n, -1)
        cands = torch.cat([cands, torch.full((n, 1), eos, device=device)], dim=1)
        cand_att = att.gather(1, cands) if use_att else torch.zeros_like(cands, dtype=torch.float)
        if use_ctc:
            psi, r = scorer.score(ctc_state, cands)
            cand_ctc = psi - ctc_state.psi[:, None]
        else:
            cand_ctc = torch.zeros_like(cand_att)
        joint = (1 - ctc_weight) * cand_att if use_att else 0.0
        joint = joint + ctc_weight * cand_ctc if use_ctc else joint
        if use_lm:
            joint = joint + lm_weight * lm_logp.gather(1, cands)
        total = score[:, None] + joint  # (n, k + 1)

        at_max = torch.tensor([step + 1 >= m for m in max_len], device=device)
        total[:, :-1] = total[:, :-1].masked_fill(at_max[rows][:, None], float("-inf"))
        total = total.masked_fill(done[rows][:, None], float("-inf"))

        flat = total.view(b, -1)
        top_score, top_idx = flat.masked_fill(is_eos_col.repeat(w), float("-inf")).topk(w, dim=1)
        eos_score = total[:, -1].view(b, w)
        # An eos candidate finishes if it would have made the beam (whisper's rule);
        # at max_len every live hypothesis finishes.
        ends = (eos_score > top_score[:, -1:]) | at_max[:, None]
        ends &= eos_score > float("-inf")
        for bi, wi in ends.nonzero().tolist():
            i = bi * w + wi
            seq = tokens[i].tolist()
            raw = float(eos_score[bi, wi])
            finished[bi].append(
                Hypothesis(
                    seq,
                    length_normalised(raw, len(seq), length_penalty),
                    float(att_sum[i] + cand_att[i, -1]),
                    float(ctc_sum[i] + cand_ctc[i, -1]),
                )
            )
        done |= torch.tensor([len(f) >= w for f in finished], device=device) | at_max
        done |= top_score[:, 0] == float("-inf")
        if bool(done.all()):
            break

        hyp = (rows.view(b, w) * w + torch.div(top_idx, k + 1, rounding_mode="floor")).view(-1)
        col = (top_idx % (k + 1)).view(-1)
        last = cands[hyp, col]
        tokens = torch.cat([tokens[hyp], last[:, None]], dim=1)
        score = top_score.view(-1)
        att_sum = att_sum[hyp] + cand_att[hyp, col]
        ctc_sum = ctc_sum[hyp] + cand_ctc[hyp, col]
        if use_att:
            state = state.select(hyp)
        if use_ctc:
            ctc_state = CTCPrefixScorer.select(ctc_state, cands, psi, r, hyp, col)
        if use_lm:
            lm_state = lm_state.select(hyp)

    return [
        max(f, key=lambda h: h.score) if f else Hypothesis([], float("-inf"), 0.0, 0.0)
        for f in finished
    ]


@torch.no_grad()
def decode_dual(
    model: DualASR,
    feats: Tensor,
    feat_lens: Tensor,
    beam: int = 10,
    ctc_weight: float | dict[str, float] = 0.3,
    length_penalty: float | None = None,
    max_len_ratio: float = 1.0,
    pre_beam_ratio: float = 1.5,
    lms: dict[str, TokenLM] | None = None,
    lm_weight: float | dict[str, float] = 0.0,
) -> dict[str, list[Hypothesis]]:
    """Hypotheses for every output of ``model`` from ONE encoder pass.

    ``feats`` ``(batch, frames, n_mels)``, ``feat_lens`` ``(batch,)``. A float
    ``ctc_weight`` applies to outputs with a CTC head; outputs without one (the
    DO meaning output by default) are decoded by attention alone. A dict gives
    the weight per output. The model must be in eval mode (no SpecAugment,
    no dropout). ``lms`` holds a language model per output for shallow fusion,
    weighted by ``lm_weight`` (a float for every output in ``lms``, or per output).
    """
    if model.training:
        raise RuntimeError("call model.eval() before decoding")
    if hasattr(model, "generate"):  # a whole pretrained model (WhisperSO) searches with its own decoder
        return decode_whole(model, feats, feat_lens, beam)
    return decode_encoded(model, model.encode(feats, feat_lens), beam, ctc_weight, length_penalty,
                          max_len_ratio, pre_beam_ratio, lms, lm_weight)  # fmt: skip


def decode_whole(model, feats: Tensor, feat_lens: Tensor, beam: int) -> dict[str, list[Hypothesis]]:
    """Hypotheses of a model that searches with its own decoder and tokenizer
    (:class:`~dualasr.model.pretrained.WhisperSO`): beam search by
    transformers, without CTC or LM fusion; its score is the search's."""
    (o,) = model.outputs
    return {o: [Hypothesis(ids, score, score, 0.0) for ids, score in model.generate(feats, feat_lens, beam)]}


@torch.no_grad()
def decode_encoded(
    model: DualASR,
    enc: EncoderOutput,
    beam: int = 10,
    ctc_weight: float | dict[str, float] = 0.3,
    length_penalty: float | None = None,
    max_len_ratio: float = 1.0,
    pre_beam_ratio: float = 1.5,
    lms: dict[str, TokenLM] | None = None,
    lm_weight: float | dict[str, float] = 0.0,
) -> dict[str, list[Hypothesis]]:
    """:func:`decode_dual` from an encoder pass ``enc`` already made, for
    callers that read the encoder output too (CTC forced alignment)."""
    results = {}
    for o in model.outputs:
        if isinstance(ctc_weight, dict):
            weight = ctc_weight.get(o, 0.0)
        else:
            weight = ctc_weight if o in model.ctcs else 0.0
        fusion = lm_weight.get(o, 0.0) if isinstance(lm_weight, dict) else lm_weight
        results[o] = beam_search(
            model, enc, o, beam, weight, length_penalty, max_len_ratio, pre_beam_ratio,
            lm=(lms or {}).get(o), lm_weight=fusion,
        )  # fmt: skip
    return results
