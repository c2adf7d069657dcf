"""The report: findings computed from the numbers, sections without their
inputs, escaping, and the self-contained page."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re

import pytest
from typer.testing import CliRunner

from dualasr.cli import app
from dualasr.layout import RunInfo, write_run_info
from dualasr.report import build_report
from dualasr.report.findings import cer_findings, cka_findings, gap_findings, training_findings
from dualasr.report.inputs import ReportError, read_training_runs
from dualasr.score.ed_gap import gaps_csv
from dualasr.score.rates import rates_csv
from dualasr.study import STAGES
from dualasr.train.trainer import MetricsLog

from .conftest import gap_rows, rate


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def cer_table(
    sso: float, mso: float, do_surface: float, do_meaning: float, lang: str = "en"
) -> list[dict]:
    """tables/cer.csv rows, as the score stage writes them."""
    return parse(
        rates_csv(
            [
                rate(lang, "sso", "surface", sso),
                rate(lang, "mso", "meaning", mso),
                rate(lang, "do", "surface", do_surface),
                rate(lang, "do", "meaning", do_meaning),
            ]
        )
    )


# ---------------------------------------------------------------------- findings


def test_cer_sentence_says_do_hurts_surface_and_helps_meaning():
    (sentence,) = cer_findings(cer_table(sso=14.0, mso=4.0, do_surface=15.5, do_meaning=3.0))
    assert sentence.startswith(
        "In en, DO lowers meaning CER by 1.00 points vs MSO (4.00 % → 3.00 %)"
    )
    assert "but raises surface CER by 1.50 points vs SSO (14.00 % → 15.50 %)" in sentence
    # The reference study's differences for the same cells: 3.19 - 3.87 and 15.08 - 13.78.
    assert "reference study reports meaning −0.68, surface +1.30 points" in sentence


def test_cer_sentence_flips_with_the_signs():
    (sentence,) = cer_findings(cer_table(sso=15.5, mso=3.0, do_surface=14.0, do_meaning=4.0))
    assert "DO raises meaning CER by 1.00 points vs MSO" in sentence
    assert "but lowers surface CER by 1.50 points vs SSO" in sentence
    (same,) = cer_findings(cer_table(sso=14.0, mso=4.0, do_surface=13.0, do_meaning=3.0))
    assert "lowers meaning CER by 1.00" in same and " and lowers surface CER by 1.00" in same
    (flat,) = cer_findings(cer_table(sso=14.0, mso=4.0, do_surface=14.0, do_meaning=3.0))
    assert "leaves surface CER unchanged vs SSO" in flat and " but " not in flat


def test_cer_sentence_without_reference_for_unreported_language():
    table = [r for r in cer_table(14.0, 4.0, 15.0, 3.0) if r["model"] != "mso"]
    (sentence,) = cer_findings(table)
    assert "meaning" not in sentence.split(".")[0]  # no MSO: no meaning comparison
    assert "raises surface CER by 1.00 points vs SSO" in sentence


def gaps(
    surface=(0.3, 1.8, 3.4, 6.7), rho=0.42, p=0.001, meaning=(-0.2, -0.3, 0.1, 0.2)
) -> list[dict]:
    """tables/ed_gap.csv rows, as the score stage writes them (CI = gap ± 1)."""
    return parse(
        gaps_csv(
            gap_rows("en", "surface", surface, rho, p)
            + gap_rows("en", "meaning", meaning, -0.05, 0.6)
        )
    )


def test_gap_sentences_trend_and_bins_whose_ci_excludes_zero():
    s = gap_findings(gaps())
    assert (
        "In en, the surface gap DO − SSO grows with ED (Spearman ρ = +0.42, p = 0.001, n = 40)"
        in s[0]
    )
    assert "reference study's goes from +0.28 at ED 0 to +6.72 at ED >10" in s[0]
    # ED 0's CI [-0.7, +1.3] contains 0; the other three exclude it.
    assert s[1].startswith(
        "In en surface, the 95 % CI of DO − SSO excludes 0 at ED 1-3 (+1.80 [+0.80, +2.80], DO worse)"
    )
    assert "ED 0" not in s[1] and "ED 4-10" in s[1] and "ED >10" in s[1]
    assert (
        "meaning gap DO − MSO shows no significant trend with ED (Spearman ρ = −0.05, p = 0.6"
        in s[2]
    )
    assert s[3] == "In en meaning, no ED bin's 95 % CI of DO − MSO excludes 0 (4 bin(s) with a CI)."


def test_gap_sentences_flip_with_the_signs():
    s = gap_findings(gaps(surface=(-0.3, -1.8, -3.4, -6.7), rho=-0.42))
    assert "the surface gap DO − SSO falls with ED (Spearman ρ = −0.42" in s[0]
    assert "ED 1-3 (−1.80 [−2.80, −0.80], DO better)" in s[1] and "worse" not in s[1]


def test_gap_single_utterance_bin_is_not_called_significant():
    rows = gaps()
    for r in rows:
        if r["output"] == "surface" and r["ed_bin"] == ">10":
            r.update(n="1", ci_low=r["gap"], ci_high=r["gap"])
    s = gap_findings(rows)[1]
    assert "ED >10 (+6.70" not in s and "ED >10 (n=1) has too few utterances for a CI" in s


def test_training_sentence_names_a_run_whose_dev_loss_rose(tmp_path):
    for model, dev in (("sso", (9.0, 7.0, 6.0)), ("do", (5.0, 6.0, 7.0))):
        run = tmp_path / "exp" / "en" / model / "seed0"
        run.mkdir(parents=True)
        write_run_info(run, RunInfo(model, model, ("surface",) if model == "sso" else ("surface", "meaning"), "en", 0))
        log = MetricsLog(run / "metrics.csv", enabled=True)
        for epoch, loss in enumerate(dev, 1):
            log.write(epoch, epoch, "dev", {"loss": loss})
    s = training_findings(read_training_runs(tmp_path / "exp"))
    assert s[0].startswith("The dev loss fell from the first to the last epoch in 1 of 2 run(s)")
    assert s[1] == "It did not fall in: en DO seed 0."
    assert "best dev loss is at the last epoch in 1 of 2 run(s)" in s[2]


def cka_row(pair: str, x: tuple[str, str], y: tuple[str, str], layer_x: int, layer_y: int, cka: float) -> dict:
    return {"lang": "en", "seed": 0, "pair": pair, "model_x": x[0], "output_x": x[1], "model_y": y[0],
            "output_y": y[1], "layer_x": layer_x, "layer_y": layer_y, "cka": cka}  # fmt: skip


def test_cka_findings_match_the_reference_cells_by_the_runs_compared():
    sso, mso, mdo = ("sso", "surface"), ("mso", "meaning"), ("do", "meaning")
    rows = [cka_row("SSO vs MSO", sso, mso, k, k, v) for k, v in ((0, 0.9), (1, 0.3), (2, 0.6))]
    rows.append(cka_row("SSO vs MSO", sso, mso, 0, 2, 0.1))
    (s,) = cka_findings(rows, "encoder")
    assert s == (
        "In en, encoder CKA of SSO vs MSO goes from 0.90 at layer 0 to 0.60 at layer 2 (lowest 0.30 at layer 1); "
        "the reference study's goes from 0.91 at layer 0 to 0.40 at layer 11."
    )
    assert cka_findings([cka_row("SSO vs MDO", sso, mdo, 0, 0, 0.5)], "decoder") == [
        "In en, decoder CKA of SSO vs MDO is 0.50 (layer 0); the reference study reports 0.17 at layer 7."
    ]
    # A variant's pair has no reference number, whatever its label.
    (s,) = cka_findings([cka_row("SSO vs MDO", sso, ("do_w", "meaning"), 0, 0, 0.5)], "decoder")
    assert "reference" not in s


# ---------------------------------------------------------------------- the report


def test_every_section_says_in_one_line_that_its_inputs_are_missing(tmp_path):
    report = build_report(tmp_path)
    assert len(report.sections) == 7
    for section in report.sections:
        assert len(section.missing) == 1 and "not found" in section.missing[0], section
        assert not section.tables and not section.figures and not section.findings
    html = report.html.read_text()
    assert html.count('class="missing"') == 7 and "<img" not in html
    assert (
        "tables/ed_gap.csv and figures/ed_gap.png: not found"
        in report.markdown.read_text().replace("\\", "")
    )


def test_a_missing_figure_alone_is_one_line(study_dir):
    (study_dir / "figures" / "cka_decoder.png").unlink()
    (study_dir / "tables" / "cka_encoder.csv").unlink()
    sections = {s.id: s for s in build_report(study_dir).sections}
    assert sections["cka-decoder"].missing == [
        "figures/cka_decoder.png: not found; the figure is left out."
    ]
    assert sections["cka-decoder"].tables  # the table is still there
    assert sections["cka-encoder"].missing == ["tables/cka_encoder.csv: not found."]
    assert [f.path for f in sections["cka-encoder"].figures] == ["figures/cka_encoder.png"]


def test_full_report_is_self_contained_with_reference_numbers(study_dir):
    report = build_report(study_dir)
    html = report.html.read_text()
    uris = re.findall(r'<img src="data:image/png;base64,([^"]+)"', html)
    assert len(uris) == 4
    assert base64.b64decode(uris[0]) == (study_dir / "figures" / "ed_gap.png").read_bytes()
    assert (study_dir / "figures" / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http" not in html.lower().replace("http-equiv", "")
    assert all(not s.missing for s in report.sections)
    md = report.markdown.read_text()
    assert "![CER gap DO − SO per ED bin" in md and "](figures/ed_gap.png)" in md
    # Reference values beside ours: Table 1 shares, Table 2 CER, Figure 2 gaps, Table 3 CKA.
    assert "| en (reference study) | 57,616 | 7,199 | 7,207 | 72,022 |" in md
    assert "| DO | 15.50 | 15.08 | 3.00 | 3.19 |" in md
    assert "| en surface | reference study | +0.28 | +1.85 | +3.42 | +6.72 |" in md
    # Table 3: the reference only in words here (its 12 layers do not match these 3, so not in the table).
    assert "the reference study's goes from 0.91 at layer 0 to 0.40 at layer 11" in md
    # Per-speaker table: surface models, then meaning models.
    assert "| speaker | utterances | SSO surface | DO surface | MSO meaning | DO meaning |" in md
    assert "| voice-b | 8 | 21.00 | 21.00 | 21.00 | 21.00 |" in md


def test_text_is_escaped_in_html_and_markdown(study_dir):
    hostile = '<script>alert("x")</script>|b'
    path = study_dir / "tables" / "cer.csv"
    rows = parse(path.read_text())
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({**r, "label": hostile if r["model"] == "do" else r["label"]} for r in rows)
    path = study_dir / "tables" / "entanglement.csv"
    rows = parse(path.read_text())
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({**r, "pair": "<img src=x onerror=alert(1)> & *bold*"} for r in rows)
    report = build_report(study_dir)
    html = report.html.read_text()
    assert "<script" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;|b" in html
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; *bold*" in html
    md = report.markdown.read_text()
    assert '\\<script\\>alert("x")\\</script\\>\\|b' in md
    assert not re.search(r"(?<!\\)<", md)  # every "<" of the text is escaped
    assert "\\<img src=x onerror=alert(1)\\> \\& \\*bold\\*" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| ") and "\\<script" in ln)
    assert len(re.findall(r"(?<!\\)\|", row)) == 6  # five cells: the escaped pipe does not split


def test_unreadable_inputs_and_wrong_directory_are_one_line_errors(study_dir, tmp_path):
    (study_dir / "tables" / "cer_by_speaker.csv").write_text("language,speaker\nen,a\n")
    with pytest.raises(ReportError, match=r"cer_by_speaker\.csv: missing column\(s\) split, model, label, output"):
        build_report(study_dir)
    (study_dir / "tables" / "cer.csv").write_text("language,model\nen,do\n")
    with pytest.raises(ReportError, match=r"cer\.csv: missing column\(s\) split, label, baseline, output, unit"):
        build_report(study_dir)
    result = CliRunner().invoke(app, ["report", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "not a study directory" in result.output


def test_report_is_the_study_stage_after_analyze():
    assert STAGES[-2:] == ("analyze", "report")


def test_nan_cells_do_not_become_findings():
    table = cer_table(14.0, 4.0, math.nan, 3.0)
    (sentence,) = cer_findings(table)
    assert "surface" not in sentence.split(".")[0] and "lowers meaning CER by 1.00" in sentence


def test_cer_notes_name_the_decoding_and_its_language_models(study_dir):
    from dualasr.config import DecodeConfig

    fused = {**DecodeConfig(lm_weight={"meaning": 0.3, "surface": 0.2}).model_dump(), "lms": {"meaning": "lm/en/meaning/lm.pt"}}
    plain = {**DecodeConfig().model_dump(), "lms": {}}
    for run, info in (("en/mso/seed0", fused), ("en/do/seed0", fused), ("en/sso/seed0", plain)):
        (study_dir / "exp" / run).mkdir(parents=True, exist_ok=True)
        name = run.split("/")[1]
        outputs = {"sso": ("surface",), "mso": ("meaning",)}.get(name, ("surface", "meaning"))
        write_run_info(study_dir / "exp" / run, RunInfo(name, name, outputs, "en", 0))
        (study_dir / "exp" / run / "decode_test.json").write_text(json.dumps(info))
        (study_dir / "exp" / run / "hyps_test.jsonl").write_text("")  # decode writes both
    md = build_report(study_dir).markdown.read_text()
    # The surface weight is set, but no surface LM was given: it is not fused.
    assert "Test decoding of en/mso/seed0, en/do/seed0: beam 5, CTC weight 0.3 (outputs with a CTC head), meaning LM at weight 0.3." in md
    assert "Test decoding of en/sso/seed0: beam 5, CTC weight 0.3 (outputs with a CTC head), no language model." in md


def test_cer_notes_name_a_run_once_over_its_test_splits(study_dir):
    """A run decoded on test_seen and test_unseen with one set-up is named once
    in that set-up's note; each split's settings are read."""
    from dualasr.config import DecodeConfig

    run = study_dir / "exp" / "en" / "do" / "seed0"
    run.mkdir(parents=True, exist_ok=True)
    write_run_info(run, RunInfo("do", "do", ("surface", "meaning"), "en", 0))
    for split, beam in (("test_seen", 5), ("test_unseen", 5), ("test_other", 3)):
        (run / f"decode_{split}.json").write_text(json.dumps({**DecodeConfig(beam=beam).model_dump(), "lms": {}}))
        (run / f"hyps_{split}.jsonl").write_text("")
    notes = [ln for ln in build_report(study_dir).markdown.read_text().splitlines() if "Test decoding of" in ln]
    beam5 = [ln for ln in notes if "beam 5," in ln]
    assert len(beam5) == 1 and beam5[0].count("en/do/seed0") == 1
    assert any("beam 3," in ln and "en/do/seed0" in ln for ln in notes)
