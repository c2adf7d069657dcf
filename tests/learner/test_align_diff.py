"""CTC forced alignment on constructed posteriors, and the word/unit diff on
hand-made English and Korean pairs (exact operations)."""

from __future__ import annotations

import numpy as np
import pytest

from dualasr.learner.align import FRAME_SECONDS, AlignmentError, WordSpan, forced_align, word_spans
from dualasr.learner.diff import diff_words
from dualasr.text.tokenizer import Tokenizer


def posteriors(frames: list[int], vocab: int, peak: float = 0.9) -> np.ndarray:
    """Log-posteriors ``(len(frames), vocab)`` whose frame ``t`` puts ``peak`` on token ``frames[t]``."""
    p = np.full((len(frames), vocab), (1 - peak) / (vocab - 1))
    p[np.arange(len(frames)), frames] = peak
    return np.log(p)


def test_viterbi_recovers_the_frames_of_each_token_repeats_included():
    # blank=0; "a b b" with a blank needed between the two b's.
    frames = [0, 2, 2, 0, 0, 3, 0, 3, 3, 0]
    spans = forced_align(posteriors(frames, 5), [2, 3, 3])
    assert [(s.token, s.start, s.end) for s in spans] == [(2, 1, 3), (3, 5, 6), (3, 7, 9)]
    assert spans[0].confidence == pytest.approx(0.9)


def test_viterbi_forces_the_transcript_even_where_another_token_wins():
    # Frame 4 prefers token 4, but the transcript says 3: the path must still emit 3.
    frames = [2, 2, 0, 0, 4, 0]
    spans = forced_align(posteriors(frames, 5), [2, 3])
    assert [(s.start, s.end) for s in spans] == [(0, 2), (4, 5)]
    assert spans[1].confidence == pytest.approx(0.025)


def test_too_few_frames_is_an_error():
    with pytest.raises(AlignmentError, match="need at least 3 frames"):
        forced_align(posteriors([2, 3], 5), [3, 3])


def test_words_split_at_the_space_token_in_seconds():
    tok = Tokenizer.build(["hi yo"], "char")
    ids = tok.encode("hi yo")  # h i ▁ y o
    frames = [0, ids[0], ids[1], 0, ids[2], 0, 0, ids[3], ids[4], ids[4], 0]
    words = word_spans(forced_align(posteriors(frames, len(tok)), ids), tok)
    assert [(w.text, w.start, w.end) for w in words] == [
        ("hi", pytest.approx(1 * FRAME_SECONDS), pytest.approx(3 * FRAME_SECONDS)),
        ("yo", pytest.approx(7 * FRAME_SECONDS), pytest.approx(10 * FRAME_SECONDS)),
    ]


def test_korean_jamo_words_are_recomposed():
    tok = Tokenizer.build(["국물 조아"], "jamo")
    ids = tok.encode("국물 조아")
    words = word_spans(forced_align(posteriors([0, *ids, 0], len(tok)), ids), tok)
    assert [w.text for w in words] == ["국물", "조아"]


def heard(*words: str) -> list[WordSpan]:
    """Heard words 0.5 s apart, each 0.4 s long."""
    return [WordSpan(w, 0.5 * i, 0.5 * i + 0.4, 0.9) for i, w in enumerate(words)]


def ops(diff):
    return [(d.error_type, d.expected, d.heard) for d in diff]


def test_english_word_diff_with_substitution_omission_and_insertion():
    diff = diff_words("this is very good".split(), heard("dis", "is", "good", "yes"), "char")
    assert ops(diff) == [
        ("Mispronunciation", "this", "dis"), ("None", "is", "is"), ("Omission", "very", ""),
        ("None", "good", "good"), ("Insertion", "", "yes"),
    ]  # fmt: skip
    omission = diff[2]
    assert (omission.start, omission.end) == (0.9, 0.9)  # zero length, where "is" ended
    assert [(u.op, u.expected, u.heard) for u in diff[0].units] == [
        ("substitution", "t", "d"), ("deletion", "h", ""), ("match", "i", "i"), ("match", "s", "s")]
    assert diff[0].accuracy == pytest.approx(50.0)
    assert diff[1].accuracy == 100.0 and diff[2].accuracy == 0.0 and diff[4].accuracy == 0.0
    assert diff[2].confidence is None and diff[4].confidence == 0.9


def test_korean_diff_in_jamo_and_in_syllables():
    diff = diff_words("국물이 좋아요".split(), heard("궁물이", "조아요"), "jamo")
    assert ops(diff) == [("Mispronunciation", "국물이", "궁물이"), ("Mispronunciation", "좋아요", "조아요")]
    changed = [(u.op, u.expected, u.heard) for u in diff[0].units if u.op != "match"]
    assert changed == [("substitution", "ㄱ", "ㅇ")]  # final ㄱ heard as final ㅇ (nasalisation)
    assert [(u.op, u.expected) for u in diff[1].units if u.op != "match"] == [("deletion", "ㅎ")]  # final ㅎ dropped

    diff = diff_words("학교에 가요".split(), heard("학교", "가요", "네"), "char")
    assert ops(diff) == [("Mispronunciation", "학교에", "학교"), ("None", "가요", "가요"), ("Insertion", "", "네")]
    assert [(u.op, u.expected, u.heard) for u in diff[0].units] == [
        ("match", "학", "학"), ("match", "교", "교"), ("deletion", "에", "")]


def test_a_sentence_left_unsaid_is_all_omissions_at_the_start():
    diff = diff_words(["hello", "there"], [], "char")
    assert ops(diff) == [("Omission", "hello", ""), ("Omission", "there", "")]
    assert all(d.start == d.end == 0.0 for d in diff)
