"""Forced-alignment word spans against word boundaries known to the sample.

Each word of a small vocabulary is spoken once by espeak-ng, its leading and
trailing silence trimmed, and the clips are laid end to end with silences of
chosen lengths: where each word starts and ends in a recording is then known
exactly. A small surface-only model (``mode: sso``, loss almost all CTC) is
trained with the project's trainer on orderings of the words until its greedy
CTC output is right on its training set; held-out orderings are then aligned
to their words with :func:`dualasr.learner.align.forced_align` over its CTC
head, and the word ends extended over the sound that follows
(:func:`dualasr.learner.align.extend_word_ends`): starts and ends lie within
80 ms of the truth. The path from frames to word times is also checked
exactly, on posteriors placed at the true boundaries of the same kind of
recording.
"""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest
import torch

from dualasr.config import TrainConfig
from dualasr.data.features import SAMPLE_RATE, compute_features, extractor
from dualasr.data.manifest import Utterance, cuts_from_utterances, write_manifest
from dualasr.learner.align import FRAME_SECONDS, extend_word_ends, forced_align, word_spans
from dualasr.model import preset
from dualasr.model.asr import ctc_greedy
from dualasr.model.checkpoint import load_model
from dualasr.text.tokenizer import Tokenizer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"),
]

VOCABULARY = ["the", "cat", "sat", "on", "red", "mat", "big", "dog"]
TOLERANCE = 0.08  # seconds, the bound
WORDS_PER_UTTERANCE = 4
TRAIN_UTTERANCES = 40
EPOCHS = 40  # enough for a right greedy output on the training set (checked below); ~30 s on one thread


def word_clips() -> dict[str, np.ndarray]:
    """Each word spoken alone by one espeak-ng voice, cut to where its
    amplitude first and last exceeds 2 % of its peak (the truth's definition
    of a word's edges: what lies outside is the synthesizer's own silence)."""
    from dualasr.data.synth import engines

    voice = next(v for v in engines.all_voices("en") if v.engine == "espeak-ng")
    clips = {}
    for word in VOCABULARY:
        x = engines.synthesize(voice, word)
        loud = np.flatnonzero(np.abs(x) > 0.02 * np.abs(x).max())
        clips[word] = x[loud[0] : loud[-1] + 1]
    return clips


def recording(words: list[str], clips: dict[str, np.ndarray], rng: random.Random) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """``words`` laid end to end with 0.1-0.3 s of quiet noise between them
    (0.2 s before and after); the samples and each word's true ``(start, end)`` in seconds."""
    noise = np.random.default_rng(rng.randrange(2**32))
    parts, truth, at = [], [], 0
    for i, word in enumerate(words):
        gap = int(SAMPLE_RATE * (0.2 if i == 0 else rng.uniform(0.1, 0.3)))
        parts += [np.zeros(gap, np.float32), clips[word]]
        at += gap
        truth.append((at / SAMPLE_RATE, (at + len(clips[word])) / SAMPLE_RATE))
        at += len(clips[word])
    parts.append(np.zeros(int(0.2 * SAMPLE_RATE), np.float32))
    x = np.concatenate(parts)
    # A noise floor: digital silence has no spectrum, so log-mel of it is a constant the model never meets elsewhere.
    return (x + noise.normal(0, 1e-3, len(x))).astype(np.float32), truth


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A CTC model trained on orderings of the vocabulary, its tokenizer, and
    held-out orderings (recordings, words, true spans) it never saw."""
    import soundfile as sf

    from dualasr.train.trainer import train

    root = tmp_path_factory.mktemp("timing_corpus")
    rng = random.Random(0)
    clips = word_clips()
    orders, seen = [], set()
    while len(orders) < TRAIN_UTTERANCES + 6:
        words = tuple(rng.sample(VOCABULARY, WORDS_PER_UTTERANCE))
        if words not in seen:
            seen.add(words)
            orders.append(list(words))
    recordings = {"train": [], "test": []}
    for split, chunk in (("train", orders[:TRAIN_UTTERANCES]), ("dev", orders[TRAIN_UTTERANCES:TRAIN_UTTERANCES + 3]),
                         ("test", orders[TRAIN_UTTERANCES + 3:])):  # fmt: skip
        items = []
        for i, words in enumerate(chunk):
            x, truth = recording(words, clips, rng)
            wav = root / "audio" / f"{split}{i:02d}.wav"
            wav.parent.mkdir(parents=True, exist_ok=True)
            sf.write(wav, x, SAMPLE_RATE)
            text = " ".join(words)
            items.append((f"timing:{split}{i:02d}", Utterance(f"{split}{i:02d}", str(wav), "en", "espeak", text, text)))
            recordings.get(split, []).append((x, words, truth))
        write_manifest(cuts_from_utterances(items), root / f"cuts_{split}.jsonl.gz")
    fbank = compute_features(root, progress=False)
    cfg = preset("smoke", mode="sso", specaug={"enabled": False}, label_smoothing=0.0,
                 weights={"ctc_surface": 0.9, "att_surface": 0.1})  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(cfg, TrainConfig(epochs=EPOCHS, max_duration=30, lr=3e-3, warmup_steps=20, schedule="linear", average_best=1),
              fbank / "train.jsonl.gz", fbank / "dev.jsonl.gz", json.loads((fbank / "cmvn.json").read_text()),
              root / "run", seed=0, progress=False)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    model, tokenizers = load_model(root / "run" / "model.pt")
    return model, tokenizers["surface"], recordings


def ctc_log_probs(model, x: np.ndarray) -> torch.Tensor:
    """``(frames, vocab)`` surface CTC log-posteriors of one recording."""
    feats = torch.from_numpy(extractor().extract(x, SAMPLE_RATE))[None]
    with torch.inference_mode():
        enc = model.encode(feats, torch.tensor([feats.size(1)]))
        return model.ctcs["surface"].log_probs(enc.out["surface"])[0]


def test_greedy_ctc_is_right_on_the_training_set(trained):
    model, tok, recordings = trained
    wrong = []
    for x, words, _ in recordings["train"]:
        lp = ctc_log_probs(model, x)
        got = tok.decode(ctc_greedy(lp[None], torch.tensor([lp.size(0)]))[0])
        if got != " ".join(words):
            wrong.append((got, " ".join(words)))
    assert not wrong, wrong


def test_a_trained_model_times_held_out_words(trained):
    """Starts and ends within 80 ms. The CTC path alone ends a word whose final
    sound is sustained ("on", "red", "big") up to about 100 ms early: the last
    letter's spike comes before the sound is over and Viterbi gives the frames
    after it to the blank; :func:`extend_word_ends` follows the sound to its end."""
    model, tok, recordings = trained
    ctc_only_end_errors = []
    for x, words, truth in recordings["test"]:
        spans = word_spans(forced_align(ctc_log_probs(model, x), tok.encode(" ".join(words))), tok)
        assert [s.text for s in spans] == words
        ctc_only_end_errors += [abs(s.end - end) for s, (_, end) in zip(spans, truth, strict=True)]
        for s, (start, end) in zip(extend_word_ends(spans, x, SAMPLE_RATE), truth, strict=True):
            assert abs(s.start - start) <= TOLERANCE and abs(s.end - end) <= TOLERANCE, (s, start, end)
    assert max(ctc_only_end_errors) > TOLERANCE  # what the extension is for


def test_spans_from_posteriors_placed_at_known_boundaries_are_within_80_ms():
    """The path from posteriors to word times in seconds, on real synthesized
    recordings: frame-level posteriors that put each word's letters, in order,
    over the encoder frames its true span covers, the word boundary token in the
    silence between words and the blank elsewhere, must give back each word at
    the frames of its true span (exactly), so within 80 ms of the truth."""
    rng = random.Random(1)
    clips = word_clips()
    tok = Tokenizer.build([" ".join(VOCABULARY)], "char")
    for _ in range(3):
        words = rng.sample(VOCABULARY, WORDS_PER_UTTERANCE)
        x, truth = recording(words, clips, rng)
        frames = [(round(a / FRAME_SECONDS), round(b / FRAME_SECONDS)) for a, b in truth]
        best = np.full(int(len(x) / SAMPLE_RATE / FRAME_SECONDS), tok.blank)
        for k, (word, (a, b)) in enumerate(zip(words, frames, strict=True)):
            letters = tok.encode(word)
            best[a:b] = [letters[i * len(letters) // (b - a)] for i in range(b - a)]
            if k:  # the boundary token mid-silence, as a trained model puts it
                best[(frames[k - 1][1] + a) // 2] = tok.encode(" ")[0]
        log_probs = np.full((len(best), len(tok)), np.log(0.1 / (len(tok) - 1)))
        log_probs[np.arange(len(best)), best] = np.log(0.9)
        spans = word_spans(forced_align(log_probs, tok.encode(" ".join(words))), tok)
        assert [s.text for s in spans] == words
        for s, (a, b), (start, end) in zip(spans, frames, truth, strict=True):
            assert (s.start, s.end) == pytest.approx((a * FRAME_SECONDS, b * FRAME_SECONDS))
            assert abs(s.start - start) <= TOLERANCE and abs(s.end - end) <= TOLERANCE
