"""The report's method comparison (dualasr.report.methods): shown only with a
dual-output variant beyond the plain DO model; per variant and output the CER,
the gap per ED bin with its CI, the entanglement index, the cost against the
plain DO model and whether the output meets the goal."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace

import pytest

from dualasr.layout import SUMMARY_FILE, RunInfo, write_run_info
from dualasr.report import build_report
from dualasr.report.findings import method_findings
from dualasr.report.methods import method_rows
from dualasr.score.ed_gap import gaps_csv
from dualasr.train.trainer import MetricsLog

from .conftest import gap_rows

# The fabricated study's plain DO: surface gaps (0.3, 1.8, 3.4, 6.7) with CIs of
# ±1 (negative transfer from ED 1-3 on), meaning gaps around 0.
VARIANT_GAPS = {"surface": (-2.0, -1.5, 0.5, 0.9), "meaning": (0.0, 0.2, -0.4, 0.8)}  # every CI reaches <= 0


def add_variant(study, name="do_x", label="DO+X", seconds=2.0):
    """A trained dual-output variant beside the plain DO: its run, training log
    (10 steps and ``seconds`` per epoch, against DO's 10 steps and 1 s), parameter
    counts (DO 1,000, the variant 1,500) and its gap rows."""
    run = study / "exp" / "en" / name / "seed0"
    run.mkdir(parents=True)
    write_run_info(run, RunInfo(name, "do", ("surface", "meaning"), "en", 0, label))
    log = MetricsLog(run / "metrics.csv", enabled=True)
    for epoch in (1, 2, 3):
        log.write(epoch, epoch * 10, "train", {"loss": 50.0 / epoch})
        log.write(epoch, epoch * 10, "dev", {"loss": 60.0 / epoch, "seconds": seconds})
    for model, n in (("do", 1000), (name, 1500)):
        (study / "exp" / "en" / model / "seed0" / SUMMARY_FILE).write_text(json.dumps({"parameters": n}))
    gaps = [
        *gap_rows("en", "surface", (0.3, 1.8, 3.4, 6.7), 0.42, 0.001),
        *gap_rows("en", "meaning", (-0.2, -0.3, 0.1, 0.2), -0.05, 0.6),
        *(g for o, v in VARIANT_GAPS.items() for g in gap_rows("en", o, v, 0.0, 1.0, model=name)),
    ]
    gaps = [replace(g, label=label) if g.model == name else g for g in gaps]
    (study / "tables" / "ed_gap.csv").write_text(gaps_csv(gaps))


def test_no_comparison_without_a_variant_beyond_do(study_dir):
    report = build_report(study_dir)
    assert "methods" not in [s.id for s in report.sections]
    assert not (study_dir / "tables" / "methods.csv").exists()


def test_comparison_rows_costs_and_goal(study_dir):
    add_variant(study_dir)
    report = build_report(study_dir)
    (section,) = [s for s in report.sections if s.id == "methods"]
    with open(study_dir / "tables" / "methods.csv", newline="") as f:
        rows = {(r["model"], r["output"]): r for r in csv.DictReader(f)}
    assert set(rows) == {(m, o) for m in ("do", "do_x") for o in ("surface", "meaning")}
    x = rows[("do_x", "surface")]
    assert (x["label"], x["baseline"]) == ("DO+X", "sso")
    assert float(x["cer"]) == pytest.approx(10.0 + sum(VARIANT_GAPS["surface"]) / 4)
    assert [float(x[f"gap_{b}"]) for b in ("0", "1-3", "4-10", ">10")] == list(VARIANT_GAPS["surface"])
    assert float(x["ci_low_>10"]) == pytest.approx(-0.1) and float(x["ci_high_>10"]) == pytest.approx(1.9)
    # Cost against the plain DO: parameters from train_summary.json, steps from metrics.csv.
    assert (x["parameters"], x["extra_parameters"]) == ("1500", "500")
    assert float(x["seconds_per_step"]) == pytest.approx(0.2) and float(x["step_time_ratio"]) == pytest.approx(2.0)
    assert (rows[("do", "surface")]["extra_parameters"], rows[("do", "surface")]["step_time_ratio"]) == ("0", "1.000")
    # The goal: every bin's CI reaches 0 or below, per output.
    assert [rows[k]["no_negative_transfer"] for k in sorted(rows)] == ["yes", "no", "yes", "yes"]
    # The entanglement index of the analyze stage; the variant was not analysed.
    with open(study_dir / "tables" / "entanglement.csv", newline="") as f:
        (ent,) = [r for r in csv.DictReader(f) if r["model"] == "do"]
    assert float(rows[("do", "surface")]["entanglement"]) == pytest.approx(float(ent["index"]))
    assert rows[("do_x", "surface")]["entanglement"] == ""
    # The section names each model by label, in the stage's table and the page.
    labels = [r.cells[2].text for r in section.tables[0].rows]
    assert labels == ["DO", "DO", "DO+X", "DO+X"]
    assert section.figures[0].path == "figures/method_gaps.png"
    assert (study_dir / "figures" / "method_gaps.png").read_bytes()[:4] == b"\x89PNG"
    assert "| DO+X | surface |" in (study_dir / "tables" / "methods.md").read_text()
    page = report.html.read_text()
    assert "Methods against negative transfer" in page and "DO+X" in page and "×2.00" in page
    (finding,) = section.findings
    assert finding.startswith("en: DO+X meets the goal; negative transfer remains in DO (surface, ED >10:")


def test_findings_when_no_model_meets_the_goal(study_dir):
    add_variant(study_dir)
    rows = method_rows(study_dir)
    assert rows is not None
    failing = [r for r in rows if r.model == "do" or r.output == "meaning"]
    (sentence,) = method_findings(failing)
    assert sentence.startswith("en: no dual-output model meets the goal; negative transfer remains in DO")
    # A variant with only one output's rows cannot be judged, not "meets".
    assert "DO+X cannot be judged" in sentence


def test_seconds_per_step_sum_epochs_over_the_final_step(study_dir):
    add_variant(study_dir, seconds=3.0)
    (row, *_) = [r for r in method_rows(study_dir) if r.model == "do_x"]
    assert row.seconds_per_step == pytest.approx(9.0 / 30) and row.step_time_ratio == pytest.approx(3.0)
    assert not math.isnan(row.extra_parameters)


def test_each_test_split_is_compared_on_its_own_gaps(study_dir):
    """With two test splits the rows of one split never take the other's gaps."""
    add_variant(study_dir)
    path = study_dir / "tables" / "ed_gap.csv"
    seen = list(csv.DictReader(path.open()))
    unseen = [{**r, "split": "test_unseen", "gap": str(float(r["gap"]) + 10)} for r in seen]
    for r in seen:
        r["split"] = "test_seen"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(seen[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(seen + unseen)
    rows = method_rows(study_dir)
    by = {(r.split, r.model, r.output): r for r in rows}
    assert {s for s, _, _ in by} == {"test_seen", "test_unseen"} and len(rows) == 2 * 4
    for model, output in (("do", "surface"), ("do_x", "meaning")):
        a, b = by[("test_seen", model, output)], by[("test_unseen", model, output)]
        assert [g.gap + 10 for g in a.gaps[:-1]] == pytest.approx([g.gap for g in b.gaps[:-1]])
    assert any(s.startswith("en test_seen: ") for s in method_findings(rows))
