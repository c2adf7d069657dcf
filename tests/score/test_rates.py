"""Error counting: agreement with jiwer, corpus-level rates, normalisation, input checks."""

from __future__ import annotations

import json
import math

import jiwer
import numpy as np
import pytest

from dualasr.score.rates import (
    References,
    ScoreError,
    corpus_rate,
    count_errors,
    mean_std,
    rate_rows,
    rates_markdown,
    read_hypotheses,
    score_file,
    score_output,
)

REFS = ["i think so", "this is very good", "hello there", "국물이 좋아요"]
HYPS = ["i sink so", "dis is bery god", "", "궁물이 조아요 요"]


def refs_of(surface, meaning=None, unit=None, language="en") -> References:
    meaning = meaning or surface
    return References(
        language, "test.jsonl.gz", tuple(f"u{i}" for i in range(len(surface))), tuple(surface), tuple(meaning),
        np.zeros(len(surface), np.int64), tuple(unit or ["char"] * len(surface)), ("spk",) * len(surface),
    )  # fmt: skip


def test_counts_match_jiwer_per_utterance_and_corpus():
    ref_chars, char_errors = count_errors(REFS, HYPS, "char")
    ref_words, word_errors = count_errors(REFS, HYPS, "word")
    for i, (r, h) in enumerate(zip(REFS, HYPS, strict=True)):
        assert char_errors[i] / ref_chars[i] == pytest.approx(jiwer.cer(r, h))
        assert word_errors[i] / ref_words[i] == pytest.approx(jiwer.wer(r, h))
    assert ref_chars.tolist() == [len(r) for r in REFS]  # spaces are characters
    assert corpus_rate(char_errors, ref_chars) == pytest.approx(100 * jiwer.cer(REFS, HYPS))
    assert corpus_rate(word_errors, ref_words) == pytest.approx(100 * jiwer.wer(REFS, HYPS))
    assert char_errors[2] == len("hello there")  # empty hypothesis: all deletions


def test_corpus_rate_is_not_mean_of_utterance_rates():
    ref_len, errors = count_errors(["a", "abcdefghij"], ["b", "abcdefghij"])
    assert corpus_rate(errors, ref_len) == pytest.approx(100 / 11)
    assert np.mean(errors / ref_len) * 100 == pytest.approx(50.0)
    assert math.isnan(corpus_rate(np.zeros(0), np.zeros(0)))


def test_both_sides_normalised_and_phone_surface_is_per():
    refs = refs_of(["hello world", "AH B K"], unit=["char", "phone"])
    s = score_output(refs, ["Hello, World!", "ah0 b t"], "sso", 0, "surface")
    assert s.char_errors.tolist() == [0, 1]
    assert s.ref_chars.tolist() == [11, 3]  # 3 phones, not 6 characters
    assert s.unit.tolist() == ["char", "phone"]
    assert math.isnan(s.word_errors[1]) and s.word_errors[0] == 0
    (row,) = [r for r in rate_rows([s], "en", "sso", "surface", s.unit) if r.unit == "phone"]
    assert row.cer == pytest.approx(100 / 3) and math.isnan(row.wer)
    assert "en surface PER" in rates_markdown([row])


def write_hyps(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_missing_and_extra_ids_name_the_file(tmp_path):
    refs = refs_of(["a b", "c d", "e f"])
    short = write_hyps(tmp_path / "short.jsonl", [{"id": "u0", "surface": "a b", "meaning": None}])
    with pytest.raises(ScoreError, match=r"short\.jsonl: 2 of 3 test-set id\(s\) missing"):
        score_file(short, refs, "sso", 0)
    rows = [{"id": f"u{i}", "surface": "x", "meaning": None} for i in range(3)] + [{"id": "zz", "surface": "x"}]
    extra = write_hyps(tmp_path / "extra.jsonl", rows)
    with pytest.raises(ScoreError, match=r"extra\.jsonl: 1 id\(s\) not in the en test set"):
        score_file(extra, refs, "sso", 0)


def test_half_null_output_and_bad_lines_are_errors(tmp_path):
    refs = refs_of(["a b", "c d"])
    half = write_hyps(tmp_path / "half.jsonl", [{"id": "u0", "surface": "a"}, {"id": "u1", "surface": None}])
    with pytest.raises(ScoreError, match=r"half\.jsonl: 'surface' is null for 1 of 2"):
        score_file(half, refs, "sso", 0)
    dup = write_hyps(tmp_path / "dup.jsonl", [{"id": "u0", "surface": "a"}, {"id": "u0", "surface": "b"}])
    with pytest.raises(ScoreError, match=r"dup\.jsonl:2: duplicate id 'u0'"):
        read_hypotheses(dup)
    ok = write_hyps(tmp_path / "ok.jsonl", [{"id": "u0", "meaning": "a b"}, {"id": "u1", "meaning": ""}])
    out = score_file(ok, refs, "mso", 0)
    assert out["surface"] is None and out["meaning"].char_errors.tolist() == [0, 3]


def test_seeds_aggregate_as_mean_and_sample_std():
    refs = refs_of(["abcd", "efgh"])
    seeds = [["abcd", "efgh"], ["abcx", "efgh"], ["abxx", "efgx"]]  # 0, 1, 3 errors in 8 characters
    runs = [score_output(refs, hyps, "do", k, "surface") for k, hyps in enumerate(seeds)]
    (row,) = rate_rows(runs, "en", "do", "surface", ["char"])
    per_seed = [0.0, 12.5, 37.5]
    assert row.cer_per_seed == pytest.approx(per_seed)
    assert (row.cer, row.cer_std) == pytest.approx((np.mean(per_seed), np.std(per_seed, ddof=1)))
    assert row.reference == 15.08 and row.seeds == (0, 1, 2)
    assert "16.67 ± 19.09" in rates_markdown([row])
    assert mean_std([3.0])[0] == 3.0 and math.isnan(mean_std([3.0])[1])
    (missing,) = rate_rows([], "en", "do", "meaning", ["char"])
    assert missing.n == 0 and math.isnan(missing.cer)
