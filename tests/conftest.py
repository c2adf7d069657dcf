"""Shared fixtures: small real audio files and dual-transcribed utterances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dualasr.data.manifest import Utterance, cuts_from_utterances, write_manifest

# Fixtures shared by tests/model and tests/decode.
pytest_plugins = ["tests.torch_fixtures"]


def write_tone(path: Path, seconds: float = 0.5, sr: int = 16000, freq: float = 220.0) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)
    return path


@pytest.fixture
def utterances(tmp_path: Path) -> list[tuple[str, Utterance]]:
    """Three English and two Korean utterances with real WAV files."""
    rows = [
        ("en1", "en", "i sink so", "i think so"),
        ("en2", "en", "dis is bery good", "this is very good"),
        ("en3", "en", "hello there", "hello there"),
        ("ko1", "ko", "궁물이 조아요", "국물이 좋아요"),
        ("ko2", "ko", "학교에 가요", "학교에 가요"),
    ]
    out = []
    for i, (uid, lang, surface, meaning) in enumerate(rows):
        wav = write_tone(tmp_path / "audio" / f"{uid}.wav", 0.4 + 0.1 * i)
        out.append((f"fixture:{i + 1}", Utterance(uid, str(wav), lang, f"spk{i % 2}", surface, meaning, l1="ko")))
    return out


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A real speech corpus small enough to train on in seconds: 36 English
    utterances (24 train, 6 dev, 6 test) spoken by espeak-ng voices, half with
    L2 surface errors, with fbank features and CMVN (``<dir>/fbank``), like a
    corpus after ``dualasr synth`` and the features stage. Builds in 3-5 s."""
    import random

    from dualasr.data.features import compute_features
    from dualasr.data.synth import engines, english
    from dualasr.data.synth.errors import sample_surface

    root = tmp_path_factory.mktemp("tiny_corpus")
    rng = random.Random(0)
    voices = [v for v in engines.all_voices("en") if v.engine == "espeak-ng"][:12]
    # Short sentences keep the batches (and the tests) small.
    sentences = sorted(english.generate_sentences(400, rng), key=len)[:36]
    rng.shuffle(sentences)
    splits = {"train": sentences[:24], "dev": sentences[24:30], "test": sentences[30:]}
    for split, meanings in splits.items():
        items = []
        for i, meaning in enumerate(meanings):
            err = sample_surface(meaning, english.RULES, 1, 3, rng) if i % 2 else None
            surface = err.surface if err else meaning
            uid = f"{split}{i:02d}"
            voice = voices[i % len(voices)]
            wav = root / "audio" / f"{uid}.wav"
            wav.parent.mkdir(parents=True, exist_ok=True)
            sf.write(wav, engines.synthesize(voice, surface, rate=1.3), 16000)
            items.append((f"tiny:{uid}", Utterance(uid, str(wav), "en", voice.id, surface, meaning, l1="ko")))
        write_manifest(cuts_from_utterances(items), root / f"cuts_{split}.jsonl.gz")
    compute_features(root, progress=False)
    return root
