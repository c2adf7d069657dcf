"""Representation capture: the hidden states of trained models over a manifest,
batch by batch, for the CKA analysis.

For every batch of utterances and every model it gives

* the output of each encoder block, per output (``EncoderOutput.layers``: a
  model with task-specific top blocks has one list per output whose trunk
  entries are the same tensors), each ``(batch, frames, d_model)`` at 1/4 of the
  feature frame rate, with the ``(batch, frames)`` padding mask (True = valid);
* the output of each decoder layer, teacher-forced on the reference text of
  that decoder's output (:meth:`DualASR.decoder_states`: inputs
  ``[sos, y1..yn]``, so position ``i`` holds the state that predicts token
  ``i + 1``), each ``(batch, L + 1, d_model)``, with the ``(batch, L + 1)``
  valid-token mask. The reference is tokenised with *that model's* tokenizer
  (:func:`dualasr.data.manifest.target_text`), as in training.

Several models run on the same batch, so their encoder frames align (same
audio, same features, same Conv2d subsampling); :func:`capture_batches` checks
that their frame masks agree. Models are in eval mode (no dropout, no
SpecAugment) under ``torch.no_grad``; the batch order is fixed (longest first,
ties by cut id), so a run is reproducible. Nothing is held beyond one batch:
:func:`capture_batches` is a generator and accumulators (e.g.
:class:`~dualasr.analysis.cka.LinearCKAAccumulator`) are updated as batches come.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from lhotse import CutSet
from torch import Tensor

from dualasr.data.features import collate_inputs
from dualasr.data.manifest import load_manifest, target_text
from dualasr.errors import DualasrError
from dualasr.model.asr import DualASR, pad_ids
from dualasr.text.tokenizer import Tokenizer


class CaptureError(DualasrError):
    """Models that cannot be compared frame by frame, or an unusable manifest."""


@dataclass
class ModelStates:
    """One model's hidden states for one batch (all detached, on the model's device).

    encoder:      output name -> list over encoder blocks of ``(batch, frames, d)``.
    frame_mask:   ``(batch, frames)`` bool, True on valid (subsampled) frames.
    decoder:      output name -> list over decoder layers of ``(batch, L_o + 1, d)``,
                  teacher-forced on the reference of output ``o``.
    token_mask:   output name -> ``(batch, L_o + 1)`` bool, True on ``sos`` and the
                  ``n`` reference tokens of each utterance.
    """

    encoder: dict[str, list[Tensor]]
    frame_mask: Tensor
    decoder: dict[str, list[Tensor]]
    token_mask: dict[str, Tensor]


@dataclass
class CapturedBatch:
    """One batch: cut ids (in batch order) and each model's :class:`ModelStates`."""

    ids: list[str]
    models: dict[str, ModelStates]


def ordered_cuts(manifest: str | Path | CutSet, max_utterances: int | None = None) -> list:
    """The cuts of a manifest with features, in the analysis order: longest first,
    ties broken by cut id. ``max_utterances`` keeps the first N cuts *by id*
    before ordering (a deterministic subset, independent of durations)."""
    cuts = manifest if isinstance(manifest, CutSet) else load_manifest(manifest, check_audio=False)
    cut_list = sorted(cuts, key=lambda c: c.id)
    if max_utterances is not None:
        cut_list = cut_list[:max_utterances]
    if not cut_list:
        raise CaptureError(f"{manifest}: no utterances to analyse")
    missing = [c.id for c in cut_list if not c.has_features]
    if missing:
        raise CaptureError(
            f"{manifest}: {len(missing)} cut(s) without features (first: {missing[0]}); "
            "use the manifest under <corpus>/fbank/"
        )
    return sorted(cut_list, key=lambda c: (-c.duration, c.id))


def model_states(
    model: DualASR, tokenizers: Mapping[str, Tokenizer], cuts: list, feats: Tensor, feat_lens: Tensor
) -> ModelStates:
    """Encoder and teacher-forced decoder states of one model for one batch.

    ``feats`` ``(batch, frames, n_mels)``, ``feat_lens`` ``(batch,)`` (on the model's
    device); ``cuts`` the batch's cuts in the same order (for the references)."""
    device = feats.device
    with torch.no_grad():
        enc = model.encode(feats, feat_lens, return_layers=True)
        decoder, token_mask = {}, {}
        for o in model.outputs:
            tok = tokenizers[o]
            ys, ys_lens = pad_ids([tok.encode(target_text(c, o, tok.unit)) for c in cuts])
            layers, mask = model.decoder_states(enc, o, ys.to(device), ys_lens.to(device))
            decoder[o] = [h.detach() for h in layers]
            token_mask[o] = mask
    encoder = {o: [h.detach() for h in hs] for o, hs in enc.layers.items()}
    return ModelStates(encoder, enc.mask, decoder, token_mask)


def capture_batches(
    models: Mapping[str, tuple[DualASR, Mapping[str, Tokenizer]]],
    manifest: str | Path | CutSet,
    batch_size: int = 16,
    max_utterances: int | None = None,
    device: torch.device | str | None = None,
) -> Iterator[CapturedBatch]:
    """Run every model on the same batches of ``manifest`` (cuts with features,
    e.g. ``<corpus>/fbank/test.jsonl.gz``) and yield their states batch by batch.

    models: name -> (model, its tokenizers), e.g. from
            :func:`dualasr.model.checkpoint.load_model`. They are put in eval mode.
    batch_size: utterances per batch (the order is fixed: see :func:`ordered_cuts`).
    device: where features go; default the device of each model's parameters.

    Raises :class:`CaptureError` when two models' frame masks differ (their
    encoders subsample differently, so frames cannot be compared)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not models:
        raise ValueError("no model to capture")
    for model, _ in models.values():
        model.eval()
    cuts = ordered_cuts(manifest, max_utterances)
    for start in range(0, len(cuts), batch_size):
        batch = cuts[start : start + batch_size]
        inputs = {}  # per input kind: fbank features, or audio for pretrained encoders
        states: dict[str, ModelStates] = {}
        for name, (model, tokenizers) in models.items():
            dev = device if device is not None else next(model.parameters()).device
            kind = model.input_kind
            if kind not in inputs:
                inputs[kind] = collate_inputs(CutSet.from_cuts(batch), kind)
            feats, lens = inputs[kind]
            states[name] = model_states(model, tokenizers, batch, feats.to(dev), lens.to(dev))
        first, ref = next(iter(states.items()))
        for name, st in states.items():
            if st.frame_mask.shape != ref.frame_mask.shape or not torch.equal(
                st.frame_mask.cpu(), ref.frame_mask.cpu()
            ):
                raise CaptureError(
                    f"models {first!r} and {name!r} give different encoder frames "
                    f"({tuple(ref.frame_mask.shape)} vs {tuple(st.frame_mask.shape)}): "
                    "frame-level CKA needs the same subsampling"
                )
        yield CapturedBatch([c.id for c in batch], states)
