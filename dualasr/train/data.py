"""Training data: which text each output learns, its tokenizer, and batches.

Batches come from Lhotse's ``DynamicBucketingSampler`` (duration-bucketed, so
padding stays small; resumable through its ``state_dict``; shards itself over
DDP ranks) feeding a map-style dataset that collates cached features and
token ids per output.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler, SimpleCutSampler

from dualasr.config import TextConfig
from dualasr.data.features import collate_inputs
from dualasr.data.manifest import supervision, target_text
from dualasr.model.asr import pad_ids
from dualasr.text.tokenizer import Tokenizer, Unit

OUTPUTS = ("surface", "meaning")


def token_unit(cuts: CutSet, output: str, text: TextConfig) -> tuple[Unit, int | None]:
    """The unit (and subword vocabulary size) of an output: phones for the surface
    of phone-annotated corpora; else sentencepiece pieces where ``text.subword``
    asks for them; else Korean syllables or jamo for Korean, characters otherwise."""
    first = next(iter(cuts))
    sup = supervision(first)
    if output == "surface" and (sup.custom or {}).get("surface_phones") is not None:
        return "phone", None
    if (size := text.subword.get(sup.language, {}).get(output)) is not None:
        return "subword", size
    return (text.korean_unit if sup.language == "ko" else "char"), None


def build_tokenizers(cuts: CutSet, outputs: tuple[str, ...], text: TextConfig, out_dir: Path) -> dict[str, Tokenizer]:
    """One tokenizer per output from the training cuts, saved as ``tokens_<output>.json``;
    an existing file is loaded instead so a resumed run keeps its ids."""
    tokenizers = {}
    for output in outputs:
        path = Path(out_dir) / f"tokens_{output}.json"
        if path.exists():
            tokenizers[output] = Tokenizer.load(path)
            continue
        unit, size = token_unit(cuts, output, text)
        tok = Tokenizer.build((target_text(c, output, unit) for c in cuts), unit, vocab_size=size)
        tok.save(path)
        tokenizers[output] = tok
    return tokenizers


class DualDataset(torch.utils.data.Dataset):
    """A CutSet batch -> ``{"ids", "feats" (batch, frames, 80), "feat_lens" (batch,),
    "targets": {output: (ids (batch, L) padded -1, lens (batch,))}}``; with
    ``input_kind="audio"`` (pretrained encoders) ``feats`` are 16 kHz waveforms
    ``(batch, samples)`` (:func:`~dualasr.data.features.collate_inputs`)."""

    def __init__(self, tokenizers: dict[str, Tokenizer], input_kind: str = "fbank"):
        self.tokenizers = tokenizers
        self.input_kind = input_kind

    def __getitem__(self, cuts: CutSet) -> dict:
        cuts = cuts.sort_by_duration(ascending=False)
        feats, feat_lens = collate_inputs(cuts, self.input_kind)
        targets = {
            out: pad_ids([tok.encode(target_text(c, out, tok.unit)) for c in cuts])
            for out, tok in self.tokenizers.items()
        }
        return {"ids": [c.id for c in cuts], "feats": feats, "feat_lens": feat_lens, "targets": targets}


def make_loader(
    cuts: CutSet,
    tokenizers: dict[str, Tokenizer],
    max_duration: float,
    shuffle: bool,
    seed: int = 0,
    num_buckets: int = 10,
    num_workers: int = 0,
    world_size: int | None = None,
    rank: int | None = None,
    input_kind: str = "fbank",
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader:
    """A DataLoader over duration-bucketed batches of at most ``max_duration``
    seconds; ``input_kind``: what the model reads (see :class:`DualDataset`);
    ``pin_memory`` (for a CUDA device) lets the batches' copies to it overlap compute."""
    buckets = min(num_buckets, len(cuts))  # Lhotse needs at least one cut per bucket
    common = dict(max_duration=max_duration, shuffle=shuffle, seed=seed, drop_last=False,
                  world_size=world_size, rank=rank)  # fmt: skip
    if buckets < 2:  # one bucket: plain sampling (Lhotse's bucketing needs two)
        sampler = SimpleCutSampler(cuts, **common)
    else:
        with warnings.catch_warnings():
            # Lhotse suggests lazy manifests for memory; ours are validated
            # eagerly on load and small next to the features.
            warnings.filterwarnings("ignore", message=".*eagerly read CutSet.*")
            sampler = DynamicBucketingSampler(cuts, num_buckets=buckets, **common)
    return torch.utils.data.DataLoader(
        DualDataset(tokenizers, input_kind),
        sampler=sampler,
        batch_size=None,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=pin_memory,
    )
