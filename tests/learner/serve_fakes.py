"""Stand-ins for a packaged model in the service's tests where the model is not
what a test is about (limits, bad inputs, concurrency, privacy) and in
``bench/serve_load.py --fake``: a package and a ``transcribe`` that returns a
fixed, realistic result timed to the audio it is given, records what it
received and can spend a set time per call. The audio still goes through the
real ``dualasr.learner.transcribe.load_audio`` in the service.

``tests/learner/test_serve_browser.py`` runs the page on a real package.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

SAMPLE_RATE = 16000
TICKS = 10_000_000  # 100-ns ticks per second


@dataclass
class FakePackage:
    language: str = "en"
    name: str = "do"
    label: str = "DO"
    provenance: dict = field(default_factory=lambda: {
        "corpus": "dualasr synth (synthetic voices)", "hours": 1.5, "voices": ["espeak-ng en-us"],
        "test_cer": {"test": {"surface": 12.0, "meaning": 8.0}},
    })  # fmt: skip


# What the learner said and meant: one word mispronounced (mat -> mad), one left
# out (on) and one added (uh). Words are spread evenly over the recording.
HEARD = ["the", "cat", "sat", "uh", "the", "mad"]
MEANT = ["the", "cat", "sat", "on", "the", "mat"]
DIFF = [  # (ErrorType, Expected, Heard, index of the heard word whose span it takes)
    ("None", "the", "the", 0), ("None", "cat", "cat", 1), ("None", "sat", "sat", 2),
    ("Insertion", "", "uh", 3), ("Omission", "on", "", 4), ("None", "the", "the", 4),
    ("Mispronunciation", "mat", "mad", 5),
]  # fmt: skip


def char_ops(expected: str, heard: str) -> list[dict]:
    """Per-character operations of the fixed pairs above (equal lengths, or one side empty)."""
    if not heard:
        return [{"op": "deletion", "expected": c, "heard": ""} for c in expected]
    if not expected:
        return [{"op": "insertion", "expected": "", "heard": c} for c in heard]
    return [{"op": "match" if a == b else "substitution", "expected": a, "heard": b}
            for a, b in zip(expected, heard, strict=True)]  # fmt: skip


class FakeTranscription:
    def __init__(self, d: dict):
        self._d = d

    def to_dict(self) -> dict:
        return self._d


@dataclass
class FakeTranscribe:
    """``transcribe(package, audio, *, text=None)``; ``seconds`` of work per call,
    spent sleeping as torch spends it outside the GIL."""

    seconds: float = 0.0
    calls: list = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, package, audio, *, text=None, **decode_options) -> FakeTranscription:
        start = time.monotonic()
        time.sleep(self.seconds)
        with self._lock:
            self.calls.append({"audio": audio, "text": text, "start": start, "end": time.monotonic()})
        duration = len(audio) / SAMPLE_RATE
        step = int(duration * TICKS / len(HEARD))

        def timed(word: str, i: int, **extra) -> dict:
            return {"Word": word, "Offset": i * step, "Duration": step, **extra}

        diff = []
        for error, expected, heard, i in DIFF:
            diff.append({"ErrorType": error, "Expected": expected, "Heard": heard,
                         "Offset": i * step, "Duration": 0 if error == "Omission" else step,
                         "AccuracyScore": 100 if error == "None" else 35, "chars": char_ops(expected, heard)})  # fmt: skip
        return FakeTranscription({
            "version": 1,
            "audio": {"duration": round(duration, 3), "sample_rate": SAMPLE_RATE},
            "model": {"name": package.name, "label": package.label, "language": package.language,
                      "trained_on": package.provenance},
            "surface": {"text": " ".join(HEARD), "words": [timed(w, i, Confidence=0.9) for i, w in enumerate(HEARD)]},
            "meaning": {"text": text or " ".join(MEANT), "source": "user" if text else "model",
                        "words": [timed(w, min(i, len(HEARD) - 1)) for i, w in enumerate(MEANT)]},
            "diff": diff,
            "reliable": False,
            "warnings": ["trained on synthetic voices only: not pronunciation feedback on real speech"],
        })  # fmt: skip
