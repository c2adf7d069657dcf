"""The SSO / MSO / DO model: a front end and a Conformer encoder shared by
per-output CTC heads and Transformer decoders.

As in ESPnet2's ``ESPnetASRModel`` the components are built outside
(:func:`build_model`) and injected, ``forward`` returns the loss with a flat
dict of detached statistics, and search lives in :mod:`dualasr.decode`.

Loss (weights ``w`` from :class:`~dualasr.model.config.ModelConfig`)::

    L = sum over outputs o of  L_o,   L_o = w[ctc_o] * CTC_o + w[att_o] * ATT_o

CTC_o is ``F.ctc_loss`` (blank 0, ``zero_infinity``) summed over the batch and
divided by the batch size; ATT_o is label-smoothed cross-entropy
(``F.cross_entropy(label_smoothing=eps)``: target ``1 - eps + eps/V``, every other
class ``eps/V``) summed over tokens and divided by the batch size, as ESPnet's
default ``length_normalized_loss=False``.

With a ``separation`` section (DO only) the loss gains ``lambda * P``, P a
separation penalty between the surface and meaning encoder outputs over the
valid frames of the batch (:func:`~dualasr.model.similarity.separation_penalty`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from rapidfuzz.distance import Levenshtein
from torch import Tensor, nn

from .config import ModelConfig, SeparationConfig
from .conformer import ConformerEncoder, EncoderOutput
from .decoder import TransformerDecoder
from .frontend import Frontend
from .layers import lengths_to_mask
from .similarity import separation_penalty

BLANK = 0
IGNORE_ID = -1

#: Targets per output name: ``(ids (batch, L) padded with -1, lengths (batch,))``.
Targets = dict[str, tuple[Tensor, Tensor]]


class CTC(nn.Module):
    """Linear projection to the output vocabulary + log-softmax."""

    def __init__(self, d_model: int, vocab_size: int):
        super().__init__()
        self.proj = nn.Linear(d_model, vocab_size)

    def log_probs(self, x: Tensor) -> Tensor:
        """``(batch, frames, d)`` -> float32 ``(batch, frames, vocab)``."""
        return F.log_softmax(self.proj(x).float(), dim=-1)

    def loss(self, x: Tensor, lens: Tensor, ys: Tensor, ys_lens: Tensor) -> Tensor:
        """Sum over the batch of ``-log P(ys | x)``, divided by the batch size."""
        log_probs = self.log_probs(x).transpose(0, 1)  # (frames, batch, vocab)
        # Padding ids (-1) are outside target_lengths, but ctc_loss still wants valid ids.
        targets = ys.clamp_min(0)
        loss = F.ctc_loss(
            log_probs, targets, lens, ys_lens, blank=BLANK, reduction="sum", zero_infinity=True
        )
        return loss / ys.size(0)


def ctc_greedy(log_probs: Tensor, lens: Tensor, blank: int = BLANK) -> list[list[int]]:
    """Best path: frame-wise argmax, repeats merged, blanks removed.

    ``log_probs`` ``(batch, frames, vocab)``, ``lens`` ``(batch,)``.
    """
    best = log_probs.argmax(-1).cpu()
    out = []
    for seq, n in zip(best, lens.tolist(), strict=True):
        merged = torch.unique_consecutive(seq[:n])
        out.append(merged[merged != blank].tolist())
    return out


def add_sos_eos(ys: Tensor, lens: Tensor, sos_eos: int) -> tuple[Tensor, Tensor]:
    """Decoder input ``[sos, y1..yn]`` (padded with eos) and target
    ``[y1..yn, eos]`` (padded with -1), both ``(batch, L+1)``."""
    b, n = ys.shape
    valid = lengths_to_mask(lens, n)
    ys_in = ys.new_full((b, n + 1), sos_eos)
    ys_in[:, 1:] = ys.masked_fill(~valid, sos_eos)
    ys_out = ys.new_full((b, n + 1), IGNORE_ID)
    ys_out[:, :n] = ys.masked_fill(~valid, IGNORE_ID)
    ys_out[torch.arange(b, device=ys.device), lens] = sos_eos
    return ys_in, ys_out


def pad_ids(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(batch, max_len)`` ids padded with ``IGNORE_ID`` (-1), and lengths ``(batch,)``."""
    lens = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    out = torch.full((len(seqs), max([len(s) for s in seqs] + [1])), IGNORE_ID, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out, lens


@dataclass
class TaskLosses:
    """Per-output weighted losses, kept in the graph, for multi-task gradient
    aggregation, e.g. ``torchjd.autojac.mtl_backward(list(t.losses.values()),
    features=t.features)``.

    losses:   output name -> ``L_o`` (scalar, undetached).
    features: ``(batch, frames, d_model)`` shared encoder output
              (:attr:`EncoderOutput.shared`); every loss reaches the shared
              parameters only through it unless the model is hierarchical.
    stats:    flat dict of detached statistics (see :meth:`DualASR.forward`).
    shared_features: every tensor through which the losses reach the shared
              parameters (:attr:`EncoderOutput.shared_features`): ``[features]``,
              or ``[h_k, top]`` with a surface head on block ``k``.
    penalty:  ``lambda * P``, the weighted separation penalty (scalar,
              undetached), an objective of its own beside the losses; None
              without a ``separation`` section.
    """

    losses: dict[str, Tensor]
    features: Tensor
    stats: dict[str, Tensor | float]
    shared_features: list[Tensor]
    penalty: Tensor | None = None


class DualASR(nn.Module):
    """Hybrid CTC/attention model with one or two outputs.

    ``decoders`` fixes the outputs (``("surface",)`` SSO, ``("meaning",)`` MSO,
    ``("surface", "meaning")`` DO); ``ctcs`` holds a CTC head for the outputs
    that have one. ``sos_eos[o]`` is output ``o``'s start/end id; blank is 0.
    """

    def __init__(
        self,
        frontend: Frontend | None,
        encoder: ConformerEncoder | nn.Module,
        decoders: dict[str, TransformerDecoder],
        ctcs: dict[str, CTC],
        weights: dict[str, float],
        sos_eos: dict[str, int],
        label_smoothing: float = 0.1,
        separation: SeparationConfig | None = None,
    ):
        super().__init__()
        self.outputs = tuple(decoders)
        if tuple(encoder.outputs) != self.outputs:
            raise ValueError(f"encoder outputs {encoder.outputs} != decoders {self.outputs}")
        self.frontend = frontend
        self.encoder = encoder
        self.decoders = nn.ModuleDict(decoders)
        self.ctcs = nn.ModuleDict(ctcs)
        self.weights = dict(weights)
        self.sos_eos = dict(sos_eos)
        self.label_smoothing = label_smoothing
        self.separation = separation

    @property
    def input_kind(self) -> str:
        """``"fbank"`` (``(batch, frames, n_mels)`` cached features) or
        ``"audio"`` (``(batch, samples)`` 16 kHz waveforms): what :meth:`encode` reads."""
        return "fbank" if self.frontend is not None else "audio"

    def set_cmvn(self, mean: Tensor, std: Tensor) -> None:
        """Global CMVN statistics ``(n_mels,)`` from the training set (a
        pretrained encoder normalises its own input: ignored)."""
        if self.frontend is not None:
            self.frontend.cmvn.set_cmvn(mean, std)

    def encode(
        self, feats: Tensor, feat_lens: Tensor, return_layers: bool = False
    ) -> EncoderOutput:
        """``feats`` ``(batch, frames, n_mels)``, ``feat_lens`` ``(batch,)`` ->
        :class:`EncoderOutput` at 1/4 of the frame rate (or waveforms
        ``(batch, samples)`` and a pretrained encoder's frames)."""
        # The surface CTC head conditions the upper blocks in a self-conditioned hierarchy.
        ctc = self.ctcs["surface"] if "surface" in self.ctcs else None
        if self.frontend is None:
            return self.encoder(feats, feat_lens, return_layers, ctc=ctc)
        x, lens = self.frontend(feats, feat_lens)
        return self.encoder(x, lens, lengths_to_mask(lens, x.size(1)), return_layers, ctc=ctc)

    def task_losses(self, feats: Tensor, feat_lens: Tensor, targets: Targets) -> TaskLosses:
        """Per-output losses; ``targets`` must hold every output of the model
        (extra keys are ignored, so one batch format serves SSO, MSO and DO)."""
        missing = [o for o in self.outputs if o not in targets]
        if missing:
            raise KeyError(f"targets lack outputs {missing}")
        enc = self.encode(feats, feat_lens)
        losses, stats = {}, {}
        for o in self.outputs:
            ys, ys_lens = targets[o]
            total = 0.0
            if o in self.ctcs:
                ctc = self._calc_ctc_loss(enc.ctc_in[o], enc.lens, ys, ys_lens, o)
                total = total + self.weights[f"ctc_{o}"] * ctc
                stats[f"loss_ctc_{o}"] = ctc.detach()
                if not self.training:  # validation: how far the CTC best path is from the target
                    stats.update(self._ctc_edits(enc.ctc_in[o], enc.lens, ys, ys_lens, o))
            att, acc = self._calc_att_loss(enc.out[o], enc.mask, ys, ys_lens, o)
            total = total + self.weights[f"att_{o}"] * att
            stats[f"loss_att_{o}"] = att.detach()
            stats[f"acc_{o}"] = acc
            losses[o] = total
            stats[f"loss_{o}"] = total.detach()
        stats["loss"] = sum(stats[f"loss_{o}"] for o in self.outputs)
        penalty = self._separation_penalty(enc, stats) if self.separation else None
        return TaskLosses(losses, enc.shared, stats, enc.shared_features, penalty)

    def forward(
        self, feats: Tensor, feat_lens: Tensor, targets: Targets
    ) -> tuple[Tensor, dict[str, Tensor | float]]:
        """Weighted total loss and stats: ``loss``, ``loss_<o>`` (weighted per
        output), ``loss_ctc_<o>``, ``loss_att_<o>``, ``acc_<o>`` (teacher-forced
        token accuracy of the decoder), and with a separation penalty
        ``penalty_<kind>`` (unweighted P; ``loss`` includes ``lambda * P``).

        The statistics are detached 0-dim tensors on the model's device (floats
        for the dev-only CTC edit counts): turning each into a Python float here
        would stop an accelerator's queue several times a step, so the trainer
        sums them as tensors and converts once per log interval."""
        t = self.task_losses(feats, feat_lens, targets)
        loss = sum(t.losses.values())
        return (loss if t.penalty is None else loss + t.penalty), t.stats

    def _separation_penalty(self, enc: EncoderOutput, stats: dict[str, Tensor | float]) -> Tensor:
        """``lambda * P`` between the surface and meaning encoder outputs; adds
        ``penalty_<kind>`` (P) to ``stats`` and lambda P to ``stats["loss"]``."""
        h_s, h_m = enc.out["surface"], enc.out["meaning"]
        if h_s is h_m:  # P would be a constant with a zero gradient: a config mistake
            raise ValueError(
                "separation: the surface and meaning encoder outputs are one tensor; "
                "give each output its own (encoder.task_specific_layers >= 1)"
            )
        kind, weight = self.separation.kind, self.separation.weight
        p = separation_penalty(kind, h_s, h_m, enc.mask)
        stats[f"penalty_{kind}"] = p.detach()
        stats["loss"] += weight * stats[f"penalty_{kind}"]
        return weight * p

    def _calc_ctc_loss(
        self, enc_out: Tensor, enc_lens: Tensor, ys: Tensor, ys_lens: Tensor, output: str
    ) -> Tensor:
        return self.ctcs[output].loss(enc_out, enc_lens, ys, ys_lens)

    def _ctc_edits(self, enc_out: Tensor, enc_lens: Tensor, ys: Tensor, ys_lens: Tensor, output: str) -> dict:
        """Per-utterance means of the token edit distance of the CTC best path to
        the target, and of the target length; their ratio over a dev set is the
        greedy CTC token error rate (``dualasr.train.trainer.validate``)."""
        hyps = ctc_greedy(self.ctcs[output].log_probs(enc_out), enc_lens)
        refs = [y[:n].tolist() for y, n in zip(ys, ys_lens.tolist(), strict=True)]
        edits = sum(Levenshtein.distance(h, r) for h, r in zip(hyps, refs, strict=True))
        return {f"ctc_edits_{output}": edits / len(refs), f"ctc_ref_{output}": sum(map(len, refs)) / len(refs)}

    def _calc_att_loss(
        self, enc_out: Tensor, enc_mask: Tensor, ys: Tensor, ys_lens: Tensor, output: str
    ) -> tuple[Tensor, Tensor]:
        ys_in, ys_out = add_sos_eos(ys, ys_lens, self.sos_eos[output])
        logits, _ = self.decoders[output](ys_in, enc_out, enc_mask)
        logits = logits.float()
        loss = F.cross_entropy(
            logits.reshape(-1, logits.size(-1)),
            ys_out.reshape(-1),
            ignore_index=IGNORE_ID,
            label_smoothing=self.label_smoothing,
            reduction="sum",
        ) / ys.size(0)
        valid = ys_out != IGNORE_ID
        acc = (logits.argmax(-1) == ys_out)[valid].float().mean()
        return loss, acc

    def decoder_states(
        self, enc: EncoderOutput, output: str, ys: Tensor, ys_lens: Tensor
    ) -> tuple[list[Tensor], Tensor]:
        """Teacher-forced hidden states of every layer of ``output``'s decoder,
        for representation analysis: list of ``(batch, L+1, d)`` (inputs
        ``[sos, y1..yn]``) and the ``(batch, L+1)`` valid mask."""
        ys_in, _ = add_sos_eos(ys, ys_lens, self.sos_eos[output])
        _, layers = self.decoders[output](ys_in, enc.out[output], enc.mask, return_layers=True)
        return layers, lengths_to_mask(ys_lens + 1, ys_in.size(1))


def build_model(
    cfg: ModelConfig, vocab_sizes: dict[str, int], sos_eos: dict[str, int] | None = None,
    tokenizers: dict | None = None, language: str | None = None, pretrained_weights: bool = True,
) -> DualASR:  # fmt: skip
    """A :class:`DualASR` for ``cfg``. ``vocab_sizes[o]`` counts every id of
    output ``o`` including blank (0) and sos/eos; ``sos_eos[o]`` defaults to the
    last id, as in ESPnet and :mod:`dualasr.text.tokenizer`.

    With ``cfg.pretrained`` (:mod:`dualasr.model.pretrained`) the encoder is
    the pretrained one, with its weights unless ``pretrained_weights`` is False
    (a checkpoint's weights are loaded next); with ``pretrained.whole`` the
    model is a :class:`~dualasr.model.pretrained.WhisperSO`, which needs the
    output's dualasr ``tokenizers`` and the training data's ``language``."""
    outputs = cfg.outputs
    missing = [o for o in outputs if o not in vocab_sizes]
    if missing:
        raise KeyError(f"vocab_sizes lacks outputs {missing} needed by mode {cfg.mode!r}")
    sos_eos = {o: (sos_eos or {}).get(o, vocab_sizes[o] - 1) for o in outputs}
    for o in outputs:
        if not 0 < sos_eos[o] < vocab_sizes[o]:
            raise ValueError(f"sos_eos[{o!r}]={sos_eos[o]} outside 1..{vocab_sizes[o] - 1}")
    if cfg.pretrained is not None:
        return _build_pretrained(cfg, vocab_sizes, sos_eos, tokenizers, language, pretrained_weights)
    d = cfg.d_model
    return _heads(
        cfg, vocab_sizes, sos_eos,
        Frontend(cfg.n_mels, d, cfg.specaug, cfg.subsampling_channels, utterance_cmn=cfg.utterance_cmn, vtlp=cfg.vtlp),
        ConformerEncoder(d, cfg.encoder, outputs, cfg.hierarchy, cfg.adapters, condition_vocab=vocab_sizes.get("surface")),
    )  # fmt: skip


def _build_pretrained(cfg, vocab_sizes, sos_eos, tokenizers, language, pretrained_weights) -> nn.Module:
    from .pretrained import PretrainedEncoder, WhisperSO, load_pretrained

    loaded = load_pretrained(cfg.pretrained, weights=pretrained_weights)
    if cfg.pretrained.whole:
        (o,) = cfg.outputs
        if tokenizers is None or o not in tokenizers:
            raise ValueError(f"pretrained.whole needs the {o} output's tokenizer (tokenizers=)")
        return WhisperSO(loaded, o, tokenizers[o], language, cfg.label_smoothing, cfg.pretrained.train_layers)
    encoder = PretrainedEncoder(loaded, cfg.d_model, cfg.outputs, cfg.pretrained, cfg.hierarchy,
                                cfg.encoder.task_specific_layers, cfg.adapters, vocab_sizes.get("surface"))  # fmt: skip
    return _heads(cfg, vocab_sizes, sos_eos, None, encoder)


def _heads(cfg: ModelConfig, vocab_sizes, sos_eos, frontend: Frontend | None, encoder: nn.Module) -> DualASR:
    """The model: ``encoder`` (after ``frontend``) under a CTC head and a decoder per output."""
    d, outputs = cfg.d_model, cfg.outputs
    weights = cfg.weights or {}
    return DualASR(
        frontend=frontend,
        encoder=encoder,
        decoders={o: TransformerDecoder(vocab_sizes[o], d, cfg.decoder) for o in outputs},
        ctcs={o: CTC(d, vocab_sizes[o]) for o in outputs if weights.get(f"ctc_{o}", 0.0) > 0},
        weights=weights,
        sos_eos=sos_eos,
        label_smoothing=cfg.label_smoothing,
        separation=cfg.separation,
    )
