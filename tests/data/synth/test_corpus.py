"""The synthetic corpus: exact ED shares, held-out voices, determinism, missing engines."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dualasr.config import Config, SynthConfig
from dualasr.data.manifest import cut_divergence, load_manifest, supervision
from dualasr.data.synth import corpus
from dualasr.data.synth.corpus import SynthError, bin_counts, build_corpus
from dualasr.text.divergence import ED_BIN_LABELS, ed_bin
from dualasr.text.normalize import normalize

HELDOUT = {
    "en": {"dev": ["flite-awb"], "test": ["mbrola-us3", "espeak-en-029-m3"]},
    "ko": {"dev": ["espeak-ko-f2"], "test": ["espeak-ko-f3"]},
}


def tiny_config(workers: int = 1, **synth) -> Config:
    base = dict(sentences={"train": 10, "dev": 3, "test": 4}, heldout_voices=HELDOUT, workers=workers)
    return Config(seed=3, synth=SynthConfig(**{**base, **synth}))


@pytest.mark.parametrize("n", [0, 1, 7, 100, 3999])
def test_bin_counts_exact(n):
    shares = [s / 1.001 for s in (0.261, 0.403, 0.295, 0.042)]  # Table 1 sums to 1.001
    counts = bin_counts(n, shares)
    assert sum(counts) == n
    assert all(abs(c - n * s) < 1 for c, s in zip(counts, shares, strict=True))


def test_plan_hits_requested_shares_and_keeps_splits_disjoint(tmp_path):
    cfg = SynthConfig(sentences={"train": {"en": 200, "ko": 120}, "dev": 40, "test": 50})
    voices = corpus.split_voices("en", SynthConfig(heldout_voices=HELDOUT), False)
    for lang in ("en", "ko"):
        jobs = corpus.plan_language(lang, cfg, 0, tmp_path, voices if lang == "en" else
                                    corpus.split_voices("ko", SynthConfig(heldout_voices=HELDOUT), False))
        for split, n in cfg.sentence_counts(lang).items():
            got = Counter(ed_bin(j.divergence) for j in jobs if j.split == split)
            assert [got[b] for b in ED_BIN_LABELS] == bin_counts(n, cfg.ed_shares[lang])
        meanings = {s: {j.meaning for j in jobs if j.split == s} for s in ("train", "dev", "test")}
        assert not meanings["test"] & (meanings["train"] | meanings["dev"])
        assert len(meanings["train"]) == {"en": 200, "ko": 120}[lang]  # distinct sentences
        assert all((j.surface == j.meaning) == (j.divergence == 0) for j in jobs)
        # The plan counts ED on its texts as they are; the manifests bin the
        # normalised texts (cut_divergence), so the shares hit here hold there
        # only while the synthetic texts are already normalised.
        assert all(normalize(t, lang) == t for j in jobs for t in (j.meaning, j.surface))


def test_engines_and_accented_voices_take_equal_turns(tmp_path):
    """Each engine's native voices, and its foreign-accented voices apart, get an
    equal share of a split; voices share their group's turns."""
    cfg = SynthConfig(sentences={"train": {"en": 280}, "dev": 10, "test": 10}, languages=["en"])
    voices = corpus.split_voices("en", SynthConfig(heldout_voices=HELDOUT), False)
    if not any(v.accent for v in voices["train"]):
        pytest.skip("no accented MBROLA voice installed (scripts/install-system-deps.sh)")
    train = [j for j in corpus.plan_language("en", cfg, 0, tmp_path, voices) if j.split == "train"]
    groups = Counter((j.voice.engine, bool(j.voice.accent)) for j in train)
    assert ("mbrola", True) in groups and ("mbrola", False) in groups
    assert max(groups.values()) - min(groups.values()) <= 1
    accented = Counter(j.voice.id for j in train if j.voice.accent)
    assert len(accented) == sum(v.accent != "" for v in voices["train"])  # every one speaks
    assert max(accented.values()) - min(accented.values()) <= 1


@pytest.mark.slow
def test_build_is_deterministic_and_holds_voices_out(tmp_path):
    a = build_corpus(tiny_config(workers=1), tmp_path / "a", progress=False)
    build_corpus(tiny_config(workers=2), tmp_path / "b", progress=False)
    assert [r.utterances["train"] for r in a] == [10, 10]
    for lang in ("en", "ko"):
        speakers = {}
        for split in ("train", "dev", "test"):
            ca = load_manifest(tmp_path / "a" / lang / f"cuts_{split}.jsonl.gz")
            cb = load_manifest(tmp_path / "b" / lang / f"cuts_{split}.jsonl.gz")
            assert [supervision(c).custom for c in ca] == [supervision(c).custom for c in cb]
            for x, y in zip(ca, cb, strict=True):
                assert np.array_equal(x.load_audio(), y.load_audio()), x.id
                assert cut_divergence(x) == supervision(x).custom["divergence"]
            speakers[split] = {supervision(c).speaker for c in ca}
        assert speakers["dev"] <= set(HELDOUT[lang]["dev"])
        assert speakers["test"] <= set(HELDOUT[lang]["test"])
        assert not speakers["train"] & (speakers["dev"] | speakers["test"])
    # Re-running skips the finished languages, with any number of workers; another
    # seed in the same directory is refused.
    again = build_corpus(tiny_config(workers=2), tmp_path / "a", progress=False)
    assert all(r.skipped_existing for r in again)
    with pytest.raises(SynthError, match="another config or seed"):
        build_corpus(Config(seed=4, synth=tiny_config().synth), tmp_path / "a", progress=False)
    audio = next((tmp_path / "a" / "en" / "audio" / "train").iterdir())
    assert sf.info(audio).samplerate == 16000


def test_manifest_audio_paths_are_absolute(tmp_path, monkeypatch):
    """A corpus built with a relative --out must load from another directory."""
    monkeypatch.chdir(tmp_path)
    cfg = tiny_config(languages=["ko"], sentences={"train": 2, "dev": 1, "test": 1})
    build_corpus(cfg, "rel", progress=False)
    monkeypatch.chdir("/")
    cuts = load_manifest(tmp_path / "rel" / "ko" / "cuts_train.jsonl.gz")
    assert all(Path(c.recording.sources[0].source).is_absolute() for c in cuts)


def test_missing_engines_named_unless_allowed(tmp_path, monkeypatch):
    # A PATH holding only espeak-ng: every other engine is missing.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(shutil.which("espeak-ng"), bin_dir / "espeak-ng")
    monkeypatch.setenv("PATH", str(bin_dir))
    cfg = tiny_config(languages=["en"], heldout_voices={"en": {"dev": ["espeak-en-gb-m1"], "test": ["espeak-en-us-f1"]}})
    with pytest.raises(SynthError, match=r"flite.*libttspico-utils.*--allow-fewer-voices"):
        build_corpus(cfg, tmp_path / "c", progress=False)
    voices = corpus.split_voices("en", cfg.synth, allow_fewer_voices=True)
    assert {v.engine for vs in voices.values() for v in vs} == {"espeak-ng"}
    assert "espeak-en-gb-m1" not in {v.id for v in voices["train"]}


def test_unknown_heldout_voice_is_named():
    cfg = SynthConfig(heldout_voices={"en": {"test": ["no-such-voice"]}})
    with pytest.raises(SynthError, match=r"synth.heldout_voices.en.test: unknown voice id\(s\) \['no-such-voice'\]"):
        corpus.split_voices("en", cfg, False)



def test_perturb_speed_scales_duration_and_frequency():
    sr = 16000
    t = np.arange(sr) / sr
    tone = np.sin(2 * np.pi * 500 * t).astype(np.float32)  # 1 s at 500 Hz
    for factor in (0.9, 1.1):
        out = corpus.perturb_speed(tone, factor, sr)
        assert abs(len(out) - sr / factor) <= 2
        peak_hz = np.argmax(np.abs(np.fft.rfft(out))) * sr / len(out)
        assert abs(peak_hz - 500 * factor) < 3, (factor, peak_hz)
    assert corpus.perturb_speed(tone, 1.0, sr) is tone


def test_speed_factors_drawn_in_range_without_changing_the_rest_of_the_plan(tmp_path):
    voices = corpus.split_voices("en", SynthConfig(heldout_voices=HELDOUT), False)
    sentences = {"train": 40, "dev": 5, "test": 5}
    plain = corpus.plan_language("en", SynthConfig(sentences=sentences), 0, tmp_path, voices)
    fast = corpus.plan_language("en", SynthConfig(sentences=sentences, speed=(0.9, 1.1)), 0, tmp_path, voices)
    assert {j.speed for j in plain} == {1.0}
    assert all(0.9 <= j.speed <= 1.1 for j in fast) and len({j.speed for j in fast}) > 10
    # Its own random stream: voices, prosody and noise are those of the unperturbed plan.
    same = ("id", "meaning", "surface", "voice", "rate", "pitch", "snr_db", "noise_seed")
    assert [[getattr(j, f) for f in same] for j in plain] == [[getattr(j, f) for f in same] for j in fast]
    assert corpus._fingerprint(SynthConfig(), 0, "en") != corpus._fingerprint(SynthConfig(speed=(0.9, 1.1)), 0, "en")


def test_built_corpus_is_speed_perturbed_and_records_it(tmp_path):
    sentences = {"train": 3, "dev": 1, "test": 1}
    for name, speed in (("plain", (1.0, 1.0)), ("fast", (1.25, 1.25))):
        build_corpus(tiny_config(languages=["ko"], sentences=sentences, speed=speed), tmp_path / name, progress=False)
    plain, fast = (load_manifest(tmp_path / d / "ko" / "cuts_train.jsonl.gz") for d in ("plain", "fast"))
    for a, b in zip(plain, fast, strict=True):
        assert (supervision(a).custom["speed"], supervision(b).custom["speed"]) == (1.0, 1.25)
        assert b.duration / a.duration == pytest.approx(1 / 1.25, abs=0.01), a.id


def test_speed_range_validated():
    with pytest.raises(ValueError, match="speed"):
        SynthConfig(speed=(0.3, 1.0))
    with pytest.raises(ValueError, match="speed"):
        SynthConfig(speed=(1.1, 0.9))
