"""The smoke study end to end: synthetic corpus, SSO/MSO/DO and named variants (one per method
family) trained, decoded, scored, analysed, reported with the method comparison."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from dualasr.config import SynthConfig, load_config, model_label
from dualasr.data.manifest import load_manifest, supervision
from dualasr.layout import read_run_info
from dualasr.study import run_study

CONF = Path(__file__).resolve().parents[1] / "conf"


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_smoke_study_produces_documented_tables(tmp_path):
    cfg = load_config(CONF / "smoke.yaml")
    lines: list[str] = []
    out = run_study(cfg, tmp_path / "study", progress=False, echo=lines.append)
    splits = ("test_seen", "test_unseen")
    for lang in ("en", "ko"):
        # The read-speech regime: test_seen reads training prompts, test_unseen never does.
        meanings = {s: {supervision(c).custom["meaning"] for c in load_manifest(out / "data" / lang / f"cuts_{s}.jsonl.gz")}
                    for s in ("train", *splits)}  # fmt: skip
        assert len(meanings["train"]) == 30 and meanings["test_seen"] <= meanings["train"]
        assert not meanings["test_unseen"] & meanings["train"]
        for model in ("sso", "mso", "do"):
            run = out / "exp" / lang / model / "seed0"
            assert (run / "model.pt").exists() and all((run / f"hyps_{s}.jsonl").exists() for s in splits)
            assert (run / "hyp_surface_test_seen.trn").exists() == (model != "mso")
            decoded = json.loads((run / "decode_test_unseen.json").read_text())
            # The meaning LM of the language is fused wherever there is a meaning output.
            lm = out / "lm" / lang / "meaning" / "lm.pt"
            assert decoded["lms"] == ({} if model == "sso" else {"meaning": str(lm)})
        assert (out / "lm" / lang / "meaning" / "lm.pt").exists() and not (out / "lm" / lang / "surface").exists()
    with open(out / "tables" / "cer.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"split", "language", "model", "output", "cer", "wer", "reference_cer"} <= set(rows[0])
    cells = {(r["split"], r["language"], r["model"], r["output"]) for r in rows}
    for split in splits:
        assert {(split, "en", "do", "surface"), (split, "en", "do", "meaning"), (split, "ko", "sso", "surface"),
                (split, "ko", "mso", "meaning")} <= cells  # fmt: skip
    with open(out / "tables" / "ed_gap.csv") as f:
        gaps = list(csv.DictReader(f))
    assert {"ed_bin", "gap", "ci_low", "ci_high", "spearman_rho"} <= set(gaps[0])
    assert {g["ed_bin"] for g in gaps} == {"0", "1-3", "4-10", ">10", "all"}
    assert {(g["split"], g["language"], g["output"]) for g in gaps if g["model"] == "do"} == {
        (s, lang, o) for s in splits for lang in ("en", "ko") for o in ("surface", "meaning")}
    assert (out / "figures" / "ed_gap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "tables" / "cer_by_speaker.csv") as f:
        by_speaker = list(csv.DictReader(f))
    for lang, split in ((lang, s) for lang in ("en", "ko") for s in splits):
        test_voices = {supervision(c).speaker for c in load_manifest(out / "data" / lang / f"cuts_{split}.jsonl.gz")}
        assert test_voices <= set(cfg.synth.heldout_voices[lang]["test"])
        for model, output in (("sso", "surface"), ("do", "meaning")):
            rows = [r for r in by_speaker if (r["split"], r["language"], r["model"], r["output"]) == (split, lang, model, output)]
            assert {r["speaker"] for r in rows} == test_voices and all(r["cer"] for r in rows)
    with open(out / "tables" / "cka_decoder.csv") as f:
        cka = {(r["lang"], r["pair"]) for r in csv.DictReader(f)}
    assert {("en", "SSO vs MSO"), ("ko", "MSO vs SDO"), ("ko", "SSO vs MDO")} <= cka  # analyze stage
    assert (out / "tables" / "entanglement.csv").exists() and (out / "figures" / "cka_encoder.png").exists()
    # The smoke config's two variants (task-specific encoder block; other loss
    # weights with a label) appear in every table and the report, by label,
    # compared with the SO model of each output.
    variants = {"do_split": "do_split", "do_w": "DO (w)"}
    for lang in ("en", "ko"):
        for name, label in variants.items():
            for output, so in (("surface", "sso"), ("meaning", "mso")):
                key = ("test_seen", lang, name, output)
                (cer,) = [r for r in rows_of(out / "tables" / "cer.csv") if (r["split"], r["language"], r["model"], r["output"]) == key]
                assert (cer["label"], cer["baseline"]) == (label, so) and cer["cer"]
                (gap,) = [g for g in gaps if (g["split"], g["language"], g["model"], g["output"], g["ed_bin"]) == (*key, "all")]
                assert (gap["label"], gap["baseline"]) == (label, so)
                assert float(gap["gap"]) == pytest.approx(float(cer["cer"]) - float(gap["cer_so"]), abs=1e-3)
                assert any((r["language"], r["model"], r["label"]) == (lang, name, label) for r in by_speaker)
            entangled = [r for r in rows_of(out / "tables" / "entanglement.csv") if (r["lang"], r["model"]) == (lang, name)]
            assert [r["label"] for r in entangled] == [label]
            assert {("sso", name), ("mso", name)} <= {(r["model_x"], r["model_y"]) for r in rows_of(out / "tables" / "cka_encoder.csv") if r["lang"] == lang}
            assert (lang, f"MSO vs {label} meaning") in cka
    assert (read_run_info(out / "exp" / "en" / "do_split" / "seed0").model_config["encoder"]["task_specific_layers"]) == 1
    report = (out / "report.html").read_text()
    assert all(label in report for label in ("do_split", "DO (w)"))
    # One variant of each method family: the report's method comparison names
    # each, and tables/methods.csv has a row per language, test split, variant and output.
    methods = {"do", "do_split", "do_w", "do_hier", "do_upgrad", "do_uw", "do_orth", "do_adapt"}
    assert methods - {"do"} == set(cfg.study.models) - {"sso", "mso", "do"}
    compared = rows_of(out / "tables" / "methods.csv")
    assert sorted((r["language"], r["split"], r["model"], r["output"]) for r in compared) == sorted(
        (lang, s, m, o) for lang in ("en", "ko") for s in splits for m in methods for o in ("surface", "meaning")
    )
    assert all(r["cer"] and r["parameters"] and r["seconds_per_step"] and r["no_negative_transfer"] in ("yes", "no")
               for r in compared)  # fmt: skip
    extra = {r["model"]: int(r["extra_parameters"]) for r in compared if (r["language"], r["split"]) == ("en", splits[0])}
    assert extra["do"] == extra["do_upgrad"] == extra["do_uw"] == 0  # training methods add no model parameters
    assert min(extra["do_split"], extra["do_hier"], extra["do_adapt"]) > 0 and extra["do_orth"] == extra["do_split"]
    comparison = report[report.index("Methods against negative transfer"):]
    labels = {m: model_label(cfg, m) for m in methods}
    assert all(f'<td class="label">{label}</td>' in comparison for label in labels.values()), labels
    assert (out / "figures" / "method_gaps.png").exists()
    assert "Error rates (Table 2)" in report and report.count('src="data:image/png;base64,') >= 2
    # Both test splits side by side, and whether each gap keeps its sign across them.
    assert all(f"en meaning CER {s}" in report and f"en meaning {s}" in report for s in splits)
    assert re.search(r"In en meaning, DO − MSO has (the same sign|a different sign) on (every|per) test split", report)
    assert "test\\_seen | test\\_unseen" in (out / "tables" / "corpus.md").read_text()
    assert (out / "report.md").exists() and lines[-1] == f"report: {out / 'report.html'}"
    assert "| en |" in (out / "tables" / "corpus.md").read_text()
    # A re-run skips every finished stage: no model is retrained.
    mtime = (out / "exp" / "en" / "do" / "seed0" / "model.pt").stat().st_mtime
    lines.clear()
    run_study(cfg, out, progress=False, echo=lines.append)
    assert (out / "exp" / "en" / "do" / "seed0" / "model.pt").stat().st_mtime == mtime
    skipped = [ln for ln in lines if "already trained and decoded, skipped" in ln]
    assert len(skipped) == 2 * len(cfg.study.models) and not any("trained and decoded in" in ln for ln in lines), lines
    assert sum("lm-meaning: already trained, skipped" in ln for ln in lines) == 2, lines


def test_until_corpus_stops_before_training(tmp_path):
    cfg = load_config(CONF / "smoke.yaml")
    sentences = {"train": 6, "dev": 2, "test_seen": 2, "test_unseen": 2}
    synth = SynthConfig(**{**cfg.synth.model_dump(), "languages": ["en"], "sentences": sentences, "prompts": 3})
    cfg = cfg.model_copy(update={"synth": synth})
    out = run_study(cfg, tmp_path / "s", progress=False, echo=lambda s: None, until="corpus")
    assert (out / "data" / "en" / "cuts_train.jsonl.gz").exists()
    assert not (out / "exp").exists()


def test_each_model_of_a_study_seed_trains_from_its_own_seed():
    from dualasr.config import model_seed

    seeds = {(s, m): model_seed(s, m) for s in (0, 1) for m in ("sso", "mso", "do")}
    assert len(set(seeds.values())) == 6  # independent initialisations, across seeds too
    assert model_seed(0, "do") == model_seed(0, "do")  # stable (no salted hash)
    assert all(0 <= v < 2**31 for v in seeds.values())
