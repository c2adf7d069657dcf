"""Features stage: 80-dim log-mel filterbanks cached once per corpus, and the
global CMVN statistics of the training split.

Extraction is Lhotse's ``Fbank`` (a Kaldi-compatible torch implementation; no
torchaudio), audio resampled to 16 kHz by Lhotse on the fly, features stored
with Lhotse's ``LilcomChunkyWriter`` (lossy-compressed, ~4x smaller than
float32, error far below the fbank's own dynamic range). Output, beside a corpus's manifests (``<data>/cuts_<split>.jsonl.gz``)::

    <data>/fbank/<split>.jsonl.gz   the manifest with features attached
    <data>/fbank/<split>.lca        the feature archive
    <data>/fbank/cmvn.json          {"mean": [80], "std": [80]} over train frames
    <data>/fbank/<split>.skipped.tsv  cuts left out under ``skip_invalid`` (audio unreadable)

(names that don't match ``cuts_*``, so corpus statistics never count a split twice).
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
from lhotse import CutSet, Fbank, FbankConfig, LilcomChunkyWriter
from lhotse.dataset.collation import collate_audio, collate_features
from lhotse.features.kaldi.layers import get_mel_banks, next_power_of_2

from dualasr.atomic import atomic_write_text
from dualasr.data.checks import UnusableCutError, record_skipped, unusable
from dualasr.data.manifest import Skipped, _short, load_manifest, write_manifest
from dualasr.rundir import manifest_stamp, reuse_or_recompute

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
NUM_MEL_BINS = 80


def fbank_config() -> FbankConfig:
    """The settings of the one feature extractor of the toolkit."""
    return FbankConfig(num_mel_bins=NUM_MEL_BINS, sampling_rate=SAMPLE_RATE)


@functools.cache
def extractor() -> Fbank:
    """The one feature extractor of the toolkit (training, decoding, analysis,
    transcription), built once per process: it holds no state between calls."""
    return Fbank(fbank_config())


def collate_inputs(cuts: CutSet, kind: str = "fbank"):
    """A model's input for ``cuts``, as ``(inputs, lengths (batch,))``: for
    ``kind`` ``"fbank"`` the cached features ``(batch, frames, 80)``; for
    ``"audio"`` (pretrained encoders, which compute their own features) the
    16 kHz waveforms ``(batch, samples)`` loaded from the cuts' recordings."""
    if kind == "fbank":
        return collate_features(cuts)
    if kind != "audio":
        raise ValueError(f"unknown model input {kind!r}; expected fbank or audio")
    cuts = CutSet.from_cuts(c if c.sampling_rate == SAMPLE_RATE else c.resample(SAMPLE_RATE) for c in cuts)
    return collate_audio(cuts)


def mel_centres() -> np.ndarray:
    """Centre frequencies (Hz, ascending) of the extractor's mel filters, from
    Lhotse's ``get_mel_banks``, the function its ``Fbank`` builds them with."""
    cfg = fbank_config()
    window = int(cfg.frame_length * cfg.sampling_rate)
    padded = next_power_of_2(window) if cfg.round_to_power_of_two else window
    _, centres = get_mel_banks(cfg.num_filters, padded, cfg.sampling_rate, cfg.low_freq, cfg.high_freq)
    return centres.squeeze(1).numpy()


def compute_split(
    manifest: Path, feats_dir: Path, split: str, num_jobs: int = 1, progress: bool = True,
    skip_invalid: bool = False,
) -> Path:  # fmt: skip
    """Extract and store features of one split; returns the new manifest path.
    Skipped when the manifest with features exists and was made from this
    ``manifest`` (content and audio files), extractor and ``skip_invalid``. A
    cut whose audio cannot be read is an error naming it, or with
    ``skip_invalid`` left out and listed in ``<split>.skipped.tsv``."""
    out = feats_dir / f"{split}.jsonl.gz"
    inputs = {"manifest": manifest_stamp(manifest), "fbank": fbank_config().to_dict(), "skip_invalid": skip_invalid}
    if reuse_or_recompute(out, inputs):
        return out
    skipped: list[Skipped] = []
    # _whole_audio reads every audio header (and names unreadable files): not twice.
    cuts = load_manifest(manifest, skip_invalid=skip_invalid, skipped=skipped, check_audio=False)
    cuts = _whole_audio(cuts, manifest, skip_invalid, skipped).resample(SAMPLE_RATE)
    feats_dir.mkdir(parents=True, exist_ok=True)
    # Absolute, like the audio paths in the corpus manifests: Lhotse stores the
    # path as given, and a relative one would only resolve from this cwd.
    storage = (feats_dir / split).resolve()
    # Lhotse appends to an existing archive; a previous interrupted run's
    # archive is stale (its manifest was never written), so start afresh.
    for stale in storage.parent.glob(f"{split}.lca*"):
        stale.unlink()
    if storage.is_dir():  # num_jobs > 1 writes one archive per job under it
        shutil.rmtree(storage)
    with_feats = cuts.compute_and_store_features(
        extractor=extractor(),
        storage_path=storage,
        num_jobs=num_jobs,
        storage_type=LilcomChunkyWriter,
        progress_bar=progress,
    )
    with_feats = _all_extracted(cuts, with_feats, manifest, skip_invalid, skipped)
    record_skipped(skipped, feats_dir / f"{split}.skipped.tsv", f"features of {manifest}")
    if skipped and not len(with_feats):
        raise UnusableCutError(f"{manifest}: no usable cut left, all {len(skipped)} skipped (see {split}.skipped.tsv)")
    write_manifest(CutSet.from_cuts(with_feats).sort_by_duration(ascending=False), out)
    return out


def _whole_audio(cuts: CutSet, manifest: Path, skip_invalid: bool, skipped: list[Skipped]) -> CutSet:
    """``cuts`` whose audio files hold every sample their manifest records
    (each other cut an error, or with ``skip_invalid`` appended to ``skipped``).

    Lhotse pads audio up to 0.5 s shorter than its recording with silence when
    loading it (its duration-mismatch tolerance), so a file truncated after
    import would otherwise be silently trained on as silence; the file's header
    (libsndfile counts the frames actually present) tells without decoding it.
    """
    kept = []
    for cut in cuts:
        expected = cut.recording.num_samples
        for src in cut.recording.sources:
            if src.type != "file":
                continue
            try:
                frames = sf.info(src.source).frames
            except Exception as e:  # deleted or replaced since the manifest was loaded
                frames, why = 0, _short(e)
            else:
                why = f"holds {frames} samples, the manifest records {expected}; truncated since import?"
            if frames < expected:
                unusable(cut, str(manifest), f"audio cannot be used ({why})", skip_invalid, skipped)
                break
        else:
            kept.append(cut)
    return cuts if len(kept) == len(cuts) else CutSet.from_cuts(kept)


def _all_extracted(
    cuts: CutSet, with_feats: CutSet, manifest: Path, skip_invalid: bool, skipped: list[Skipped]
) -> CutSet:
    """``with_feats``, after checking that no cut of ``cuts`` is missing from it
    (each missing cut an error, or with ``skip_invalid`` appended to ``skipped``).

    Lhotse's extraction drops a cut whose audio fails to load with only a
    logged warning; comparing ids finds those cuts, and loading each one's
    audio again (only those) recovers the reason for the message.
    """
    done = set(with_feats.ids)
    for cut in cuts:
        if cut.id not in done:
            try:
                cut.load_audio()
                reason = "no features extracted"
            except Exception as e:  # Lhotse and soundfile raise several types for one cause
                reason = f"audio cannot be read ({type(e).__name__}: {_short(e)})"
            unusable(cut, str(manifest), reason, skip_invalid, skipped)
    return with_feats


def compute_cmvn(train_manifest: Path, out: Path) -> dict[str, list[float]]:
    """Global mean and standard deviation per mel bin over every training frame
    (float64 accumulation), written atomically as JSON; reused while ``train_manifest``
    and its features are unchanged."""
    if reuse_or_recompute(out, {"train_manifest": manifest_stamp(train_manifest)}):
        return json.loads(out.read_text())
    total = np.zeros(NUM_MEL_BINS)
    total_sq = np.zeros(NUM_MEL_BINS)
    frames = 0
    for cut in load_manifest(train_manifest, check_audio=False):
        f = cut.load_features().astype(np.float64)
        total += f.sum(0)
        total_sq += (f**2).sum(0)
        frames += len(f)
    if frames == 0:
        raise ValueError(f"{train_manifest}: no frames to compute CMVN statistics from")
    mean = total / frames
    std = np.sqrt(np.maximum(total_sq / frames - mean**2, 1e-10))
    stats = {"mean": mean.tolist(), "std": std.tolist(), "frames": frames}
    atomic_write_text(out, json.dumps(stats), overwrite=True)
    return stats


def compute_features(
    data_dir: str | Path, splits=("train", "dev", "test"), num_jobs: int = 1, progress: bool = True,
    skip_invalid: bool = False,
) -> Path:  # fmt: skip
    """Features of the given splits of ``data_dir`` (``cuts_<split>.jsonl.gz``) and,
    with the training split, the CMVN, into ``data_dir/fbank``; finished parts are
    skipped. ``skip_invalid``: see :func:`compute_split`."""
    data_dir = Path(data_dir)
    feats_dir = data_dir / "fbank"
    for split in splits:
        compute_split(data_dir / f"cuts_{split}.jsonl.gz", feats_dir, split, num_jobs, progress, skip_invalid)
    if "train" in splits:
        compute_cmvn(feats_dir / "train.jsonl.gz", feats_dir / "cmvn.json")
    return feats_dir
