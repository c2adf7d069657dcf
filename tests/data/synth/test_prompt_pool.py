"""The read-speech regime: training prompts read by several speakers, and the
two test splits test_seen (training prompts, unseen voices) and test_unseen
(unseen prompts, unseen voices)."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest

from dualasr.config import SynthConfig
from dualasr.data.synth import corpus
from dualasr.data.synth.corpus import bin_counts
from dualasr.text.divergence import ED_BIN_LABELS, ed_bin

HELDOUT = {
    "en": {"dev": ["flite-awb"], "test": ["mbrola-us3", "espeak-en-029-m3"]},
    "ko": {"dev": ["espeak-ko-f2"], "test": ["espeak-ko-f3"]},
}
SENTENCES = {"train": {"en": 240, "ko": 160}, "dev": 30, "test_seen": 40, "test_unseen": 40}
PROMPTS = {"en": 60, "ko": 40}


def pool_config(**synth) -> SynthConfig:
    return SynthConfig(**{"sentences": SENTENCES, "prompts": PROMPTS, "heldout_voices": HELDOUT, **synth})


def plan(lang: str, cfg: SynthConfig, seed: int = 0) -> list[corpus.Job]:
    voices = corpus.split_voices(lang, cfg, False)
    return corpus.plan_language(lang, cfg, seed, Path("/nonexistent"), voices)


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_prompts_are_reread_with_their_own_errors_and_shares_stay_exact(lang):
    cfg = pool_config()
    jobs = plan(lang, cfg)
    assert cfg.splits() == ("train", "dev", "test_seen", "test_unseen")
    for split, n in cfg.sentence_counts(lang).items():
        got = Counter(ed_bin(j.divergence) for j in jobs if j.split == split)
        assert [got[b] for b in ED_BIN_LABELS] == bin_counts(n, cfg.ed_shares[lang]), split
    train = [j for j in jobs if j.split == "train"]
    reads = Counter(j.meaning for j in train)
    assert len(reads) == PROMPTS[lang]  # exactly the configured number of distinct prompts
    assert max(reads.values()) - min(reads.values()) <= 2  # readings spread over the pool
    # Every reading draws its own errors: a prompt read several times with
    # errors mostly gets different surfaces (two learners, two pronunciations).
    surfaces = defaultdict(list)
    for j in train:
        if j.divergence:
            surfaces[j.meaning].append(j.surface)
    reread = [s for s in surfaces.values() if len(s) >= 2]
    assert reread and sum(len(set(s)) > 1 for s in reread) / len(reread) > 0.8
    # The same prompt is read by several speakers.
    voices = defaultdict(set)
    for j in train:
        voices[j.meaning].add(j.voice.id)
    assert sum(len(v) > 1 for v in voices.values()) / len(voices) > 0.8


@pytest.mark.parametrize("dev_regime", ["unseen", "seen"])
def test_test_seen_reads_training_prompts_and_test_unseen_never(dev_regime):
    cfg = pool_config(dev_regime=dev_regime)
    jobs = plan("en", cfg)
    meanings = {s: {j.meaning for j in jobs if j.split == s} for s in cfg.splits()}
    assert meanings["test_seen"] <= meanings["train"]
    assert not meanings["test_unseen"] & (meanings["train"] | meanings["dev"] | meanings["test_seen"])
    assert len(meanings["test_unseen"]) == SENTENCES["test_unseen"]  # one reading each
    if dev_regime == "seen":
        assert meanings["dev"] <= meanings["train"]
    else:
        assert not meanings["dev"] & meanings["train"]
    # Both test splits are read by the held-out test voices only, never heard in training.
    speakers = {s: {j.voice.speaker for j in jobs if j.split == s} for s in cfg.splits()}
    test_voices = {j.voice.id for j in jobs if j.split.startswith("test")}
    assert test_voices <= set(HELDOUT["en"]["test"])
    for split in ("test_seen", "test_unseen", "dev"):
        assert speakers[split] and not speakers[split] & speakers["train"], split


def test_plan_is_deterministic_for_a_seed():
    cfg = pool_config()
    first = [(j.id, j.meaning, j.surface, j.voice.id, j.rate, j.snr_db) for j in plan("ko", cfg)]
    assert first == [(j.id, j.meaning, j.surface, j.voice.id, j.rate, j.snr_db) for j in plan("ko", cfg)]
    other = [(j.id, j.meaning, j.surface, j.voice.id, j.rate, j.snr_db) for j in plan("ko", cfg, seed=1)]
    assert first != other


def test_without_prompts_every_utterance_reads_its_own_sentence():
    cfg = SynthConfig(sentences={"train": 80, "dev": 10, "test": 10}, heldout_voices=HELDOUT)
    jobs = plan("en", cfg)
    assert cfg.splits() == ("train", "dev", "test")
    assert len({j.meaning for j in jobs if j.split == "train"}) == 80


@pytest.mark.parametrize(
    ("synth", "match"),
    [
        ({"prompts": 10}, r"sentences\.test: not a split of a corpus with synth\.prompts"),
        ({"sentences": {"train": 50, "dev": 5, "test_seen": 5}}, r"sentences\.test_seen: not a split of a corpus without"),
        ({"prompts": 60, "sentences": {"train": 50, "dev": 5, "test_seen": 5}}, r"prompts\.en: 60 prompts for 50"),
        ({"prompts": 10, "sentences": {"train": 50, "dev": 5}}, r"sentences: no test split"),
        ({"prompts": {"en": 10}, "sentences": {"train": 50, "dev": 5, "test_unseen": 5}}, r"prompts\.ko: missing"),
    ],
)
def test_pool_config_errors_name_the_key(synth, match):
    with pytest.raises(ValueError, match=match):
        SynthConfig(**synth)
