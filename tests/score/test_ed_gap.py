"""Paired bootstrap CIs, Spearman correlation and the ED-gap rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dualasr.score.ed_gap import ALL, ed_gap_rows, paired_bootstrap, spearman
from dualasr.score.rates import References, score_output


def synthetic(n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    length = rng.integers(10, 30, n)
    return rng.poisson(1.5, n), rng.poisson(1.0, n), length


def test_bootstrap_ci_contains_estimate_narrows_and_is_reproducible():
    e_do, e_so, length = synthetic(50)
    gap = 100 * (e_do.sum() - e_so.sum()) / length.sum()
    low, high = paired_bootstrap(e_do, e_so, length, 1000, rng=7)
    assert low < gap < high
    big = synthetic(5000)
    big_low, big_high = paired_bootstrap(*big, 1000, rng=7)
    assert big_high - big_low < (high - low) / 3  # ~ 1/sqrt(100) of the width
    assert paired_bootstrap(e_do, e_so, length, 1000, rng=7) == (low, high)
    assert paired_bootstrap(e_do, e_so, length, 1000, rng=8) != (low, high)
    assert all(math.isnan(v) for v in paired_bootstrap(e_do[:0], e_so[:0], length[:0]))


def test_bootstrap_is_paired():
    # DO makes exactly one error more than SO on every utterance: each resample
    # gives the same gap, so a paired CI has zero width (an unpaired one would not).
    e_so, length = np.arange(40) % 5, np.full(40, 10)
    low, high = paired_bootstrap(e_so + 1, e_so, length, 500, rng=0)
    assert low == pytest.approx(10.0) and high == pytest.approx(10.0)


def test_spearman_monotone_and_degenerate():
    ed = np.array([0, 1, 2, 3, 5, 8, 13])
    rho, p = spearman(ed, np.exp(ed / 3.0))  # monotone, not linear
    assert rho == pytest.approx(1.0) and p < 0.01
    assert spearman(ed, -ed)[0] == pytest.approx(-1.0)
    assert math.isnan(spearman(ed, np.zeros(7))[0]) and math.isnan(spearman(ed[:2], ed[:2])[0])


def test_empty_bin_and_missing_output_are_nan_rows():
    refs = References("en", "t", ("a", "b", "c"), ("ab", "cd", "ef"), ("ab", "cd", "ef"),
                      np.array([0, 2, 2]), ("char",) * 3, ("spk",) * 3)  # fmt: skip
    so = [score_output(refs, ["ab", "cd", "ef"], "sso", 0, "surface")]
    do = [score_output(refs, ["xb", "cd", "xx"], "do", 0, "surface")]
    rows = {r.ed_bin: r for r in ed_gap_rows(refs, "surface", "do", do, "sso", so, bootstrap=200)}
    assert rows["0"].gap == pytest.approx(50.0) and rows["1-3"].gap == pytest.approx(50.0)
    assert rows["4-10"].n == 0 and math.isnan(rows["4-10"].gap) and math.isnan(rows["4-10"].ci_low)
    assert rows[ALL].n == 3 and rows[ALL].reference is None and rows["0"].reference == 0.28
    notes: list[str] = []
    missing = ed_gap_rows(refs, "meaning", "do", [], "mso", [], bootstrap=200, notes=notes)
    assert [r.n for r in missing] == [0] * 5 and all(math.isnan(r.gap) for r in missing)
