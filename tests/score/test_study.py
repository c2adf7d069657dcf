"""``score_study`` on a hand-made study directory whose numbers are worked out by hand."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dualasr.data.manifest import Utterance, cuts_from_utterances, write_manifest
from dualasr.layout import RunInfo, run_dir, write_run_info
from dualasr.score.rates import ScoreError, load_references
from dualasr.score.study import decoded_runs, score_study

# id, surface, meaning; ED 0, 0, 2, 3, 8 (bins 0, 0, 1-3, 1-3, 4-10; >10 empty).
UTTS = [
    ("a0", "hello world", "hello world"),
    ("a1", "good day", "good day"),
    ("b0", "i sink so", "i think so"),
    ("b1", "dis is bery good", "this is very good"),
    ("c0", "ze sing zat is gud", "the thing that is good"),
]
SPEAKER = {"a": "s1", "b": "s2", "c": "s2"}  # by the id's first letter
# Character errors per utterance (a0, a1, b0, b1, c0) of each run and output.
ERRORS = {
    ("sso", 0, "surface"): [0, 1, 0, 1, 2],
    ("sso", 1, "surface"): [1, 1, 1, 0, 3],
    ("do", 0, "surface"): [1, 2, 1, 2, 5],
    ("do", 1, "surface"): [0, 2, 2, 1, 4],
    ("mso", 0, "meaning"): [1, 0, 2, 1, 4],  # no mso seed 1: meaning gap uses seed 0
    ("do", 0, "meaning"): [0, 0, 1, 1, 2],
    ("do", 1, "meaning"): [0, 1, 1, 0, 1],
    ("do_pcgrad", 0, "surface"): [0, 0, 0, 0, 0],  # its meaning is missing
}
#: What each run is (its run.json): mode and outputs.
MODES = {"sso": ("sso", ("surface",)), "mso": ("mso", ("meaning",))}
DUAL = ("do", ("surface", "meaning"))


def corrupt(text: str, k: int) -> str:
    """``text`` with its first ``k`` non-space characters replaced by "x": exactly k errors."""
    out, left = [], k
    for c in text:
        out.append("x" if left and c != " " else c)
        left -= bool(left and c != " ")
    return "".join(out)


def make_study(root: Path, errors: dict = ERRORS, modes: dict = MODES) -> Path:
    wav = root / "audio.wav"
    sf.write(wav, np.zeros(1600, np.float32), 16000)
    utts = [(f"t:{i}", Utterance(uid, str(wav), "en", SPEAKER[uid[0]], s, m)) for i, (uid, s, m) in enumerate(UTTS)]
    write_manifest(cuts_from_utterances(utts), root / "data" / "en" / "cuts_test.jsonl.gz")
    runs = {(model, seed) for model, seed, _ in errors}
    for model, seed in runs:
        lines = []
        for i, (uid, s, m) in enumerate(UTTS):
            row = {"id": uid, "scores": {"surface": -1.0}}
            for output, ref in (("surface", s), ("meaning", m)):
                counts = errors.get((model, seed, output))
                row[output] = corrupt(ref, counts[i]) if counts else None
            lines.append(json.dumps(row))
        run = run_dir(root, "en", model, seed)
        run.mkdir(parents=True)
        write_run_info(run, RunInfo(model, *modes.get(model, DUAL), "en", seed))
        (run / "hyps_test.jsonl").write_text("\n".join(lines) + "\n")
    return root


def read_csv(path: Path) -> dict[tuple, dict]:
    with open(path) as f:
        return {tuple(r[k] for k in ("model", "output", "ed_bin") if k in r): r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = make_study(tmp_path_factory.mktemp("study"))
    return root, score_study(root, bootstrap=300, seed=0)


def test_discovery(study):
    root, _ = study
    found = [(r.info.language, r.info.name, r.info.seed) for r in decoded_runs(root / "exp", "test")]
    assert found == [  # table order: SO models, then dual-output ones
        ("en", "sso", 0), ("en", "sso", 1), ("en", "mso", 0), ("en", "do", 0), ("en", "do", 1), ("en", "do_pcgrad", 0),
    ]  # fmt: skip


def test_ed_gap_numbers_by_hand(study):
    root, result = study
    rows = read_csv(root / "tables" / "ed_gap.csv")
    # Surface, ED 0 (a0 11 chars + a1 8 chars): seed 0 DO 3 errors vs SSO 1, seed 1 DO 2 vs SSO 2.
    s0 = rows[("do", "surface", "0")]
    seed_gaps = [100 * (3 - 1) / 19, 100 * (2 - 2) / 19]
    assert float(s0["gap"]) == pytest.approx(np.mean(seed_gaps), abs=1e-4)
    assert float(s0["gap_std"]) == pytest.approx(np.std(seed_gaps, ddof=1), abs=1e-4)
    assert float(s0["cer_so"]) == pytest.approx(100 * 3 / 38, abs=1e-4)
    assert float(s0["cer_do"]) == pytest.approx(100 * 5 / 38, abs=1e-4)
    assert (s0["n"], s0["seeds"], s0["reference_gap"]) == ("2", "0;1", "0.2800")
    # Surface, ED 1-3 (b0 9 + b1 16 chars): DO 3 vs SSO 1 in both seeds -> 8.0 ± 0.
    s13 = rows[("do", "surface", "1-3")]
    assert (float(s13["gap"]), float(s13["gap_std"])) == pytest.approx((8.0, 0.0))
    # Surface, ED 4-10 (c0 18 chars): seeds 5-2 and 4-3.
    assert float(rows[("do", "surface", "4-10")]["gap"]) == pytest.approx(100 * (3 + 1) / 2 / 18, abs=1e-4)
    # Empty bin: explicit NaN row.
    empty = rows[("do", "surface", ">10")]
    assert empty["n"] == "0" and empty["gap"] == "" and empty["ci_low"] == ""
    # Meaning pairs seed 0 only (no mso seed 1): ED 0 -> (0 - 1) / 19, one seed so no std.
    m0 = rows[("do", "meaning", "0")]
    assert float(m0["gap"]) == pytest.approx(-100 / 19, abs=1e-4) and m0["gap_std"] == "" and m0["seeds"] == "0"
    assert any("seed(s) 1 have no partner" in n for n in result.notes)
    for r in result.gaps:
        if r.n:
            assert r.ci_low <= r.gap + 1e-9 and r.gap - 1e-9 <= r.ci_high
    # Spearman on the "all" row, against the per-utterance pooled gaps worked out by hand.
    every = rows[("do", "surface", "all")]
    assert every["n"] == "5" and every["spearman_n"] == "5"
    assert float(every["gap"]) == pytest.approx(100 * ((11 - 4) + (9 - 6)) / 2 / 62, abs=1e-4)
    from scipy.stats import spearmanr

    per_utt = [0 / 22, 2 / 16, 2 / 18, 2 / 32, 4 / 36]
    assert float(every["spearman_rho"]) == pytest.approx(spearmanr([0, 0, 2, 3, 8], per_utt).statistic, abs=1e-4)


def test_missing_output_and_table2(study):
    root, result = study
    gaps = read_csv(root / "tables" / "ed_gap.csv")
    assert gaps[("do_pcgrad", "meaning", "all")]["n"] == "0"
    assert any("do_pcgrad/seed0/hyps_test.jsonl: meaning is null" in n for n in result.notes)
    rates = {(r["model"], r["output"]): r for r in csv.DictReader(open(root / "tables" / "cer.csv"))}
    sso = rates[("sso", "surface")]
    assert float(sso["cer"]) == pytest.approx(100 * (4 + 6) / 2 / 62, abs=1e-4)
    assert float(sso["cer_std"]) == pytest.approx(np.std([400 / 62, 600 / 62], ddof=1), abs=1e-4)
    assert (sso["n_seeds"], sso["reference_cer"]) == ("2", "13.7800")
    assert rates[("do_pcgrad", "meaning")]["n"] == "0" and rates[("do_pcgrad", "meaning")]["cer"] == ""
    assert ("sso", "meaning") not in rates  # an SO model has one output: no empty row for the other
    md = (root / "tables" / "cer.md").read_text()
    assert "| SSO | 8.06 ± 2.28 | 13.78 | — |" in md  # shown by label
    assert "reference study" in (root / "tables" / "ed_gap.md").read_text()
    errors = list(csv.DictReader(open(root / "tables" / "errors.csv")))
    assert len(errors) == 5 * 8 and {e["ed"] for e in errors} == {"0", "2", "3", "8"}


def test_cer_by_speaker_by_hand(study):
    root, result = study
    assert root / "tables" / "cer_by_speaker.md" in result.files
    rows = {(r["speaker"], r["model"], r["output"]): r for r in csv.DictReader(open(root / "tables" / "cer_by_speaker.csv"))}
    # s1 = a0 + a1 (19 chars), s2 = b0 + b1 + c0 (43 chars); SSO surface errors seed 0: 1 and 3, seed 1: 2 and 4.
    s1, s2 = rows[("s1", "sso", "surface")], rows[("s2", "sso", "surface")]
    assert (s1["n"], s2["n"], s1["seeds"]) == ("2", "3", "0;1")
    assert float(s1["cer"]) == pytest.approx(100 * 1.5 / 19, abs=1e-4)
    assert float(s1["cer_std"]) == pytest.approx(np.std([100 / 19, 200 / 19], ddof=1), abs=1e-4)
    assert float(s2["cer"]) == pytest.approx(100 * 3.5 / 43, abs=1e-4)
    assert float(rows[("s2", "mso", "meaning")]["cer"]) == pytest.approx(100 * 7 / 49, abs=1e-4)  # one seed; meaning s2 refs 10 + 17 + 22 chars
    assert ("s1", "sso", "meaning") not in rows and ("s1", "do_pcgrad", "meaning") not in rows
    md = (root / "tables" / "cer_by_speaker.md").read_text()
    assert "| speaker | utterances | SSO surface | DO surface | do\\_pcgrad surface | MSO meaning | DO meaning |" in md
    assert f"| s2 | 3 | {100 * 3.5 / 43:.2f} ± {np.std([300 / 43, 400 / 43], ddof=1):.2f} |" in md
    errors = list(csv.DictReader(open(root / "tables" / "errors.csv")))
    assert {(e["id"][0], e["speaker"]) for e in errors} == {("a", "s1"), ("b", "s2"), ("c", "s2")}


def test_figure_is_a_png(study):
    root, result = study
    png = root / "figures" / "ed_gap.png"
    assert png in result.files and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    assert imread(png).ndim == 3


def test_missing_ids_error_names_the_file(tmp_path):
    root = make_study(tmp_path, {("sso", 0, "surface"): [0] * 5})
    path = root / "exp" / "en" / "sso" / "seed0" / "hyps_test.jsonl"
    path.write_text("\n".join(path.read_text().splitlines()[:3]) + "\n")
    with pytest.raises(ScoreError, match=rf"{path}: 2 of 5 test-set id\(s\) missing"):
        score_study(root, bootstrap=10)
    assert not (root / "tables").exists()  # nothing half-written


def test_phone_annotated_cut_scores_surface_in_phones(tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(1600, np.float32), 16000)
    utt = Utterance("p0", str(wav), "en", "spk", "ze cat", "the cat",
                    surface_phones=["Z", "AH0", "K", "AE1", "T"], canonical_phones=["DH", "AH0", "K", "AE1", "T"])  # fmt: skip
    write_manifest(cuts_from_utterances([("t:1", utt)]), tmp_path / "cuts_test.jsonl.gz")
    refs = load_references(tmp_path / "cuts_test.jsonl.gz")["en"]
    assert refs.surface == ("Z AH K AE T",) and refs.surface_unit == ("phone",)
    assert refs.meaning == ("the cat",) and refs.ed.tolist() == [1]  # phone-level divergence
