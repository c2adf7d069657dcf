"""A study holding named DO variants beside SSO, MSO and DO: score, analysis and
report show each variant by the label its run.json gives, with gaps against the
single-output model of each output."""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path

import pytest

from dualasr.analysis import analyze
from dualasr.analysis.analyze import analyze_study
from dualasr.data.manifest import load_manifest, supervision
from dualasr.report import build_report
from dualasr.report import figures as report_figures
from dualasr.score import ed_gap
from dualasr.score.study import score_study

#: Character errors put in every hypothesis of each (run, output); SSO and MSO are perfect.
ERRORS = {("do", "surface"): 1, ("do", "meaning"): 0, ("do_split", "surface"): 2, ("do_split", "meaning"): 1,
          ("do_w", "surface"): 3, ("do_w", "meaning"): 2}  # fmt: skip


def rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_hyps(study, corpus) -> tuple[int, int]:
    """Hypotheses for every run of the tiny study; returns the surface reference
    length (characters) and the number of test utterances."""
    cuts = list(load_manifest(corpus / "cuts_test.jsonl.gz", check_audio=False))
    for run in (study / "exp" / "en").iterdir():
        outputs = json.loads((run / "seed0" / "run.json").read_text())["outputs"]
        lines = []
        for cut in cuts:
            custom = supervision(cut).custom
            row = {"id": cut.id}
            for o in ("surface", "meaning"):
                k = ERRORS.get((run.name, o), 0)
                row[o] = "x" * k + custom[o][k:] if o in outputs else None
            lines.append(json.dumps(row))
        (run / "seed0" / "hyps_test.jsonl").write_text("\n".join(lines) + "\n")
    return sum(len(supervision(c).custom["surface"]) for c in cuts), len(cuts)


@pytest.fixture
def figure_texts(monkeypatch):
    """Legend entries and titles of every figure drawn, by file name."""
    seen: dict[str, list[str]] = {}

    def capture(module):
        original = module.save_figure

        def save(fig, path, dpi=110):
            texts = [ax.get_title() for ax in fig.axes]
            texts += [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
            seen[path.name] = texts
            return original(fig, path, dpi=dpi)

        monkeypatch.setattr(module, "save_figure", save)

    for module in (ed_gap, analyze, report_figures):
        capture(module)
    return seen


def test_every_table_figure_and_the_report_show_variants_by_label(study_copy, figure_texts):
    corpus = Path(json.loads((study_copy / "corpora.json").read_text())["en"])
    chars, n = write_hyps(study_copy, corpus)
    score_study(study_copy, bootstrap=20, manifests={"en": {"test": corpus / "cuts_test.jsonl.gz"}})
    analyze_study(study_copy, echo=lambda _: None)
    report = build_report(study_copy)
    tables = study_copy / "tables"

    cer = {(r["model"], r["output"]): r for r in rows(tables / "cer.csv")}
    assert {(m, r["label"], r["baseline"]) for (m, o), r in cer.items() if o == "surface"} == {
        ("sso", "SSO", ""), ("do", "DO", "sso"), ("do_split", "split", "sso"), ("do_w", "do_w", "sso"),
    }  # fmt: skip
    assert float(cer[("do_w", "surface")]["cer"]) == pytest.approx(100 * 3 * n / chars, abs=1e-3)
    md = (tables / "cer.md").read_text()
    assert "| split |" in md and "| do\\_w |" in md

    gaps = {(r["model"], r["output"]): r for r in rows(tables / "ed_gap.csv") if r["ed_bin"] == "all"}
    assert set(gaps) == {(m, o) for m in ("do", "do_split", "do_w") for o in ("surface", "meaning")}
    for (model, output), r in gaps.items():
        so = {"surface": ("sso", "SSO"), "meaning": ("mso", "MSO")}[output]
        assert (r["baseline"], r["baseline_label"]) == so
        # The SO models are perfect: the gap is the variant's own CER.
        assert float(r["gap"]) == pytest.approx(float(cer[(model, output)]["cer"]), abs=1e-3)
    assert (gaps[("do_split", "surface")]["label"], gaps[("do_w", "meaning")]["label"]) == ("split", "do_w")
    assert gaps[("do_split", "surface")]["reference_gap"] == ""  # a variant is not the reference study's DO
    md = (tables / "ed_gap.md").read_text()
    assert "| split − SSO |" in md and "| do\\_w − MSO |" in md

    speakers = rows(tables / "cer_by_speaker.csv")
    assert {(r["label"], r["output"]) for r in speakers} >= {("split", "surface"), ("do_w", "meaning")}
    assert "split surface" in (tables / "cer_by_speaker.md").read_text()

    enc = {r["pair"] for r in rows(tables / "cka_encoder.csv")}
    assert {"SSO vs split", "MSO vs split", "split surface vs split meaning", "SSO vs do_w", "MSO vs do_w"} <= enc
    assert "do_w surface vs do_w meaning" not in enc  # one shared encoder: no branches to compare
    dec = {r["pair"] for r in rows(tables / "cka_decoder.csv")}
    assert {"MSO vs split meaning", "SSO vs do_w surface", "MSO vs do_w surface", "do_w surface vs do_w meaning"} <= dec
    ent = {r["model"]: r for r in rows(tables / "entanglement.csv")}
    assert (ent["do_split"]["label"], ent["do_w"]["label"]) == ("split", "do_w")
    assert float(ent["do_w"]["encoder_index"]) == 1.0 and float(ent["do_split"]["encoder_index"]) < 1

    assert "split − SSO" in figure_texts["ed_gap.png"] and "do_w − MSO" in figure_texts["ed_gap.png"]
    assert {"SSO vs split", "MSO vs do_w"} <= set(figure_texts["cka_encoder.png"])
    assert {"MSO vs split meaning", "do_w surface vs do_w meaning (entanglement)"} <= set(figure_texts["cka_decoder.png"])
    assert {"split seed 0 train", "do_w seed 0 dev"} <= set(figure_texts["training.png"])

    page = html.unescape(report.html.read_text())
    for text in ("split − SSO", "do_w − MSO", "SSO vs split", "MSO vs do_w meaning", "split surface",
                 "In en, split ", "In en, do_w "):  # fmt: skip
        assert text in page, text
    assert page.count("<td class=\"label\">split</td>") >= 2  # Table 2 and the entanglement table
