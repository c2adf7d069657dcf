"""Real synthesis with every installed engine (no mocks).

A voice whose Debian package is missing is skipped with the package named.
"""

from __future__ import annotations

import functools
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dualasr.data.synth.engines import (
    ENGINE_PACKAGES,
    SynthesisError,
    Voice,
    all_voices,
    missing_packages,
    synthesize,
)

SR = 16000
SENTENCE = {"en": "the cat sat on the mat", "ko": "오늘 날씨가 좋아요"}
LONG = {
    "en": "i think so but don't you know it's fine",
    "ko": "오늘은 날씨가 정말 좋아서 공원에 갈 거예요",
}
# (surface, meaning): a real L2 error each; "먹어요"/"머거요" would not do, since
# the engines apply the liaison rule themselves and speak both identically
SURFACE_MEANING = {"en": ("i sink so", "i think so"), "ko": ("방을 먹어요", "빵을 먹어요")}

VOICES = {v.id: v for v in all_voices("en") + all_voices("ko")}
# one voice per engine and language, plus the voices that take a separate code path
REPRESENTATIVES = [
    "espeak-en-us-m3",
    "mbrola-us1",
    "mbrola-fr4-en",  # a database of another language at 22.05 kHz speaking English
    "flite-slt",
    "flite-kal",
    "festival-kal",
    "festival-slt-hts",
    "pico-en-US",
    "rhvoice-slt",
    "espeak-ko-f2",
    "mbrola-hn1",
]


def require(voice: Voice) -> Voice:
    missing = missing_packages([voice])
    if missing:
        pytest.skip(f"{voice.id} not installed: apt-get install {missing[voice.id]}")
    return voice


@functools.cache
def _fbank_extractor():
    from lhotse.features.kaldi.extractors import Fbank  # imports torch: load on first use

    return Fbank()


def fbank(audio: np.ndarray, frames: int = 200) -> np.ndarray:
    """80-dim log-mel features linearly time-normalised to ``frames`` frames, so
    that utterances of slightly different length compare frame by frame."""
    f = _fbank_extractor().extract(audio, SR)
    pos = np.linspace(0, len(f) - 1, frames)
    return np.stack([np.interp(pos, np.arange(len(f)), f[:, k]) for k in range(f.shape[1])], 1)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(fbank(a) - fbank(b)).mean())


def median_f0(audio: np.ndarray, lo: float = 50.0, hi: float = 400.0) -> float:
    """Median F0 (Hz) of voiced 40 ms frames: autocorrelation peak above 0.6."""
    n, hop = int(0.04 * SR), int(0.01 * SR)
    frames = np.lib.stride_tricks.sliding_window_view(audio, n)[::hop]
    frames = frames - frames.mean(axis=1, keepdims=True)
    rms = np.sqrt((frames**2).mean(axis=1))
    frames = frames[rms > 0.1 * np.sqrt((audio**2).mean())]
    spec = np.fft.rfft(frames, 2 * n)
    ac = np.fft.irfft(np.abs(spec) ** 2)[:, :n]
    ac = ac / (ac[:, :1] + 1e-12)
    lags = np.arange(int(SR / hi), int(SR / lo))
    best = lags[np.argmax(ac[:, lags], axis=1)]
    voiced = ac[np.arange(len(ac)), best] > 0.6
    return float(np.median(SR / best[voiced]))


def test_registry_ids_are_unique_and_filename_safe():
    for language in ("en", "ko"):
        voices = all_voices(language)
        assert all(v.language == language for v in voices)
        assert all(v.engine in ENGINE_PACKAGES for v in voices)
        assert all(re.fullmatch(r"[A-Za-z0-9-]+", v.id) for v in voices)
    ids = [v.id for v in VOICES.values()]
    assert len(ids) == len(set(ids))
    # espeak-ng variants are distinct speakers; the same recordings share a speaker
    assert len({v.speaker for v in all_voices("ko") if v.engine == "espeak-ng"}) >= 11
    assert VOICES["flite-slt"].speaker == VOICES["rhvoice-slt"].speaker
    # accented English: one recorded speaker per MBROLA database, none native
    accented = [v for v in all_voices("en") if v.accent]
    assert len(accented) >= 10 and all(v.engine == "mbrola" for v in accented)
    assert len({v.speaker for v in accented}) == len(accented)
    assert not {v.speaker for v in accented} & {v.speaker for v in VOICES.values() if not v.accent}
    assert {v.accent for v in accented} >= {"de", "fr", "nl"}
    with pytest.raises(ValueError, match="fr"):
        all_voices("fr")


def test_install_script_installs_every_engine_and_voice_package():
    """ENGINE_PACKAGES and scripts/install-system-deps.sh list the same apt
    packages twice (Python for error messages, bash for set-up): a voice added
    to the registry must reach both."""
    script = (Path(__file__).resolve().parents[3] / "scripts" / "install-system-deps.sh").read_text()
    listed = re.search(r"^PACKAGES=\((.*?)^\)", script, re.M | re.S).group(1)
    apt = {w for line in listed.splitlines() for w in line.split("#")[0].split()}
    assert {p for packages in ENGINE_PACKAGES.values() for p in packages} <= apt
    # voice data that arrives as a dependency of the engine's package
    dependencies = {"espeak-ng-data", "libttspico-data"}
    for v in VOICES.values():
        assert v.package in set(ENGINE_PACKAGES[v.engine]) | dependencies, v.id


@pytest.mark.parametrize("voice_id", list(VOICES))
def test_every_installed_voice_speaks(voice_id):
    voice = require(VOICES[voice_id])
    audio = synthesize(voice, SENTENCE[voice.language])
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert np.abs(audio).max() <= 1.0
    assert np.sqrt((audio**2).mean()) > 0.01, "near-silent"
    assert 0.6 < len(audio) / SR < 4.0, f"{len(audio) / SR:.2f} s for a 5-6 word sentence"


@pytest.mark.parametrize("voice_id", REPRESENTATIVES)
def test_rate_changes_duration(voice_id):
    voice = require(VOICES[voice_id])
    assert "rate" in voice.controls
    text = LONG[voice.language]
    slow, fast = (len(synthesize(voice, text, rate=r)) for r in (0.7, 1.5))
    # duration ~ 1/rate: expected ratio 0.47
    assert 0.35 < fast / slow < 0.6


@pytest.mark.parametrize("voice_id", REPRESENTATIVES + ["flite-rms"])
def test_pitch_changes_median_f0_when_supported(voice_id):
    voice = require(VOICES[voice_id])
    text = LONG[voice.language]
    low, high = (synthesize(voice, text, pitch=p) for p in (0.8, 1.25))
    if "pitch" in voice.controls:
        # expected ratio 1.56
        assert 1.3 < median_f0(high) / median_f0(low) < 1.9
    else:  # ignored, as documented
        assert np.array_equal(low, high)


@pytest.mark.parametrize("voice_id", REPRESENTATIVES)
def test_surface_audio_differs_from_meaning_audio(voice_id):
    voice = require(VOICES[voice_id])
    surface, meaning = SURFACE_MEANING[voice.language]
    a, again, b = synthesize(voice, surface), synthesize(voice, surface), synthesize(voice, meaning)
    d_same, d_diff = distance(a, again), distance(a, b)
    assert d_diff > 0.2, f"{surface!r} and {meaning!r} sound alike (log-mel distance {d_diff:.3f})"
    assert d_same < 0.25 * d_diff


def test_word_edge_apostrophes_are_not_spoken():
    voice = require(VOICES["espeak-en-us-m3"])
    assert np.array_equal(synthesize(voice, "goin' home"), synthesize(voice, "goin home"))
    assert not np.array_equal(synthesize(voice, "i can't"), synthesize(voice, "i can"))


def test_output_is_resampled():
    voice = require(VOICES["pico-en-US"])  # native 16 kHz
    n16 = len(synthesize(voice, "hello"))
    n22 = len(synthesize(voice, "hello", sample_rate=22050))
    assert abs(n22 - n16 * 22050 / 16000) <= 2


def test_missing_binaries_are_reported_with_their_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no engine binary
    missing = missing_packages(VOICES[v] for v in REPRESENTATIVES)
    assert set(missing) == set(REPRESENTATIVES)
    for voice_id, package in [
        ("espeak-en-us-m3", "espeak-ng"),
        ("mbrola-us1", "mbrola"),
        ("flite-slt", "flite"),
        ("festival-kal", "festival"),
        ("pico-en-US", "libttspico-utils"),
        ("rhvoice-slt", "rhvoice"),
    ]:
        assert package in missing[voice_id].split()
    with pytest.raises(SynthesisError, match="rhvoice-slt.*install: rhvoice"):
        synthesize(VOICES["rhvoice-slt"], "hello")


def test_missing_voice_data_is_reported_and_fails_cleanly():
    ghost = replace(
        require(VOICES["mbrola-us1"]), id="mbrola-zz9", name="zz9", package="mbrola-zz9"
    )
    ghost_rh = replace(
        require(VOICES["rhvoice-slt"]), id="rhvoice-nobody", name="nobody", package="rhvoice-nobody"
    )
    assert missing_packages([ghost, ghost_rh, VOICES["mbrola-us1"]]) == {
        "mbrola-zz9": "mbrola-zz9",
        "rhvoice-nobody": "rhvoice-nobody",
    }
    with pytest.raises(SynthesisError, match=r"mbrola voice mbrola-zz9.*espeak-ng -v mb-zz9"):
        synthesize(ghost, "hello")
