"""CTC forced alignment: when each token and word of a transcription was heard.

The Viterbi path of a token sequence ``y`` through a CTC head's posteriors
(Graves et al. 2006; the "trellis" of CTC segmentation, Kürzinger et al. 2020)
runs over the extended sequence ``blank y1 blank y2 ... yL blank`` (``2L + 1``
states): at each encoder frame a state stays, moves to the next state, or skips
the blank between two *different* tokens. The frames a token's state holds
are its span. One encoder frame covers 4 feature frames of 10 ms (the
front end's Conv2d subsampling x4), so frame ``t`` starts at ``t * 0.04`` s.

Hand-written (a few lines of numpy) rather than ``ctc-segmentation``: that
package finds utterances inside long recordings, allows unaligned stretches
and wants its own character list and configuration; here the transcription is
the model's own hypothesis of the whole clip and only the exact Viterbi path is
needed. torchaudio's ``forced_align`` is not used (torchaudio pins old torch
builds).

Words: the tokenizer writes the word boundary as its ``▁`` token (characters,
jamo) or as the ``▁`` prefix of a piece (subwords); a phone output has no
boundary, so each phone is its own word.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import Tensor

from dualasr.errors import DualasrError
from dualasr.text.tokenizer import SPACE, Tokenizer

#: Seconds per encoder frame: 10 ms feature shift x 4 (Conv2d subsampling).
FRAME_SECONDS = 0.04


class AlignmentError(DualasrError):
    """A transcription that cannot be aligned to the posteriors (too few frames)."""


@dataclass(frozen=True)
class TokenSpan:
    """One aligned token: id, frames ``[start, end)`` and confidence, the mean
    posterior ``exp(log p(token | frame))`` over those frames (0..1)."""

    token: int
    start: int
    end: int
    confidence: float


@dataclass(frozen=True)
class WordSpan:
    """One aligned word: its text, ``[start, end)`` in seconds, and its
    confidence, the mean of its tokens' confidences."""

    text: str
    start: float
    end: float
    confidence: float


def forced_align(log_probs: Tensor | np.ndarray, tokens: list[int], blank: int = 0) -> list[TokenSpan]:
    """Viterbi alignment of ``tokens`` to CTC log-posteriors ``(frames, vocab)``
    of one utterance (no padding); one span per token, in order. A sequence
    that needs more frames than there are (tokens plus a blank between
    repeats) is an :class:`AlignmentError`."""
    x = np.asarray(log_probs.detach().cpu() if isinstance(log_probs, Tensor) else log_probs, dtype=np.float64)
    n_frames, n = x.shape[0], len(tokens)
    if n == 0:
        return []
    needed = n + sum(a == b for a, b in zip(tokens, tokens[1:], strict=False))
    if n_frames < needed:
        raise AlignmentError(f"{n} tokens need at least {needed} frames, the audio gives {n_frames}")
    states = np.full(2 * n + 1, blank)
    states[1::2] = tokens
    # A token state may be entered from the token before it (skipping the
    # blank) unless both are the same token.
    skip = np.zeros(len(states), dtype=bool)
    skip[3::2] = np.asarray(tokens[1:]) != np.asarray(tokens[:-1])
    score = np.full(len(states), -np.inf)
    score[:2] = x[0, states[:2]]
    back = np.zeros((n_frames, len(states)), dtype=np.int8)  # 0 stay, 1 from s-1, 2 from s-2
    for t in range(1, n_frames):
        prev1 = np.concatenate([[-np.inf], score[:-1]])
        prev2 = np.where(skip, np.concatenate([[-np.inf, -np.inf], score[:-2]]), -np.inf)
        cand = np.stack([score, prev1, prev2])
        back[t] = cand.argmax(0)
        score = cand.max(0) + x[t, states]
    # The path ends in the last token or the blank after it.
    s = len(states) - 1 if score[-1] >= score[-2] else len(states) - 2
    path = np.empty(n_frames, dtype=np.int64)
    for t in range(n_frames - 1, -1, -1):
        path[t] = s
        s -= back[t, s]
    spans = []
    for k, token in enumerate(tokens):
        frames = np.flatnonzero(path == 2 * k + 1)
        conf = float(np.exp(x[frames, token]).mean())
        spans.append(TokenSpan(token, int(frames[0]), int(frames[-1]) + 1, conf))
    return spans


def word_spans(spans: list[TokenSpan], tokenizer: Tokenizer) -> list[WordSpan]:
    """Group aligned tokens into words at the tokenizer's word boundary (see
    the module docstring); the boundary tokens themselves belong to no word."""
    groups: list[list[TokenSpan]] = []
    for span in spans:
        piece = tokenizer.tokens[span.token]
        if tokenizer.unit == "phone" or not groups or piece.startswith(SPACE):
            groups.append([])
        if piece != SPACE:
            groups[-1].append(span)
    return [
        WordSpan(
            tokenizer.decode(s.token for s in g), g[0].start * FRAME_SECONDS, g[-1].end * FRAME_SECONDS,
            float(np.mean([s.confidence for s in g])),
        )  # fmt: skip
        for g in groups
        if g
    ]


def extend_word_ends(
    words: list[WordSpan], waveform: np.ndarray, sample_rate: int, floor_db: float = 30.0
) -> list[WordSpan]:
    """Word ends moved later while the recording is still sounding.

    CTC emits a word's last token as a short spike, often before a sustained
    final sound (a nasal, a voiced stop's closure, a long vowel) is over, so a
    word's aligned end comes early. Each end is extended over the following
    10 ms frames that are still sounding, stopping at the first quieter frame
    and never past the next word's start (or the end of the audio). A frame
    sounds when its RMS level is within ``floor_db`` dB of the loudest frame
    and 6 dB above the background (the 10th percentile of the levels, so
    steady noise in the pauses does not count as speech). ``waveform``: mono
    samples."""
    hop = sample_rate // 100
    n = len(waveform) // hop
    if not words or n == 0:
        return words
    frames = waveform[: n * hop].reshape(n, hop).astype(np.float64)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = level >= max(level.max() - floor_db, np.percentile(level, 10) + 6.0)
    out = []
    for i, w in enumerate(words):
        limit = min(n, int(words[i + 1].start * 100)) if i + 1 < len(words) else n
        f = int(round(w.end * 100))
        while f < limit and loud[f]:
            f += 1
        out.append(WordSpan(w.text, w.start, max(w.end, f / 100), w.confidence))
    return out
