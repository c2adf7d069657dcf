"""``dualasr analyze`` on a tiny study: documented tables, pairs, figures, the
entanglement index, skipped models, idempotent re-runs."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil

from typer.testing import CliRunner

from dualasr.analysis.analyze import CKA_COLUMNS, ENTANGLEMENT_COLUMNS, plan_pairs
from dualasr.cli import app
from dualasr.layout import RunInfo
from tests.analysis.conftest import DECODER_LAYERS, ENCODER_LAYERS

PNG = b"\x89PNG\r\n\x1a\n"
# Runs by label: SSO, MSO, DO, "split" (do_split, task-specific blocks), do_w (other weights).
ENCODER_PAIRS = {
    "SSO vs MSO", "SSO vs DO", "MSO vs DO", "SSO vs split", "MSO vs split", "split surface vs split meaning",
    "SSO vs do_w", "MSO vs do_w",
}  # fmt: skip
DECODER_PAIRS = {
    "SSO vs MSO", "MSO vs MDO", "SSO vs SDO", "MSO vs SDO", "SSO vs MDO", "SDO vs MDO",
    *(f"{a} vs {v} {o}" for v in ("split", "do_w") for a, o in
      (("MSO", "meaning"), ("SSO", "surface"), ("MSO", "surface"), ("SSO", "meaning"))),
    "split surface vs split meaning", "do_w surface vs do_w meaning",
}  # fmt: skip

SSO = RunInfo("sso", "sso", ("surface",), "en", 0)
MSO = RunInfo("mso", "mso", ("meaning",), "en", 0)
DO = RunInfo("do", "do", ("surface", "meaning"), "en", 0)


def read_csv(path):
    if isinstance(path, io.StringIO):
        reader = csv.DictReader(path)
        return reader.fieldnames, list(reader)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def run(*args):
    result = CliRunner().invoke(app, ["analyze", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def test_plan_pairs_follows_tables_3_and_4():
    pairs = plan_pairs([SSO, MSO, DO])
    enc = [(p.name, p.x, p.y) for p in pairs if p.kind == "encoder"]
    assert enc == [
        ("SSO vs MSO", ("sso", "surface"), ("mso", "meaning")),
        ("SSO vs DO", ("sso", "surface"), ("do", "surface")),  # the DO branch of the compared output
        ("MSO vs DO", ("mso", "meaning"), ("do", "meaning")),
    ]
    dec = [p.name for p in pairs if p.kind == "decoder"]
    assert dec == ["SSO vs MSO", "MSO vs MDO", "SSO vs SDO", "MSO vs SDO", "SSO vs MDO", "SDO vs MDO"]
    assert {p.level for p in pairs if p.kind == "decoder"} == {"utterance"}
    # Without MSO only the pairs not involving it remain.
    assert [p.name for p in plan_pairs([SSO, DO])] == ["SSO vs DO", "SSO vs SDO", "SSO vs MDO", "SDO vs MDO"]


def test_plan_pairs_reads_identity_not_names():
    # A surface-only model named "base", a meaning-only one named "sso" and a
    # dual-output "mine" with task-specific blocks: outputs decide, labels name.
    base = RunInfo("base", "sso", ("surface",), "en", 0, label="Base")
    meaning = RunInfo("sso", "mso", ("meaning",), "en", 0, label="M-only")
    mine = RunInfo("mine", "do", ("surface", "meaning"), "en", 0,
                   model_config={"encoder": {"task_specific_layers": 2}})  # fmt: skip
    pairs = {p.name: (p.kind, p.x, p.y) for p in plan_pairs([base, meaning, mine])}
    assert pairs["Base vs M-only"] == ("decoder", ("base", "surface"), ("sso", "meaning"))
    assert pairs["Base vs mine"] == ("encoder", ("base", "surface"), ("mine", "surface"))
    assert pairs["M-only vs mine"] == ("encoder", ("sso", "meaning"), ("mine", "meaning"))
    assert pairs["mine surface vs mine meaning"][1:] == (("mine", "surface"), ("mine", "meaning"))
    assert "M-only vs mine meaning" in pairs


def test_analyze_writes_documented_tables_and_figures(study_copy):
    out = run(study_copy)
    assert "analyze en/seed0: sso, mso, do, do_split, do_w on 6 utterances" in out
    tables = study_copy / "tables"
    columns, enc = read_csv(tables / "cka_encoder.csv")
    assert tuple(columns) == CKA_COLUMNS
    assert {"lang", "seed", "pair", "model_x", "model_y", "layer_x", "layer_y", "cka"} <= set(columns)
    assert {r["pair"] for r in enc} == ENCODER_PAIRS
    assert len(enc) == len(ENCODER_PAIRS) * ENCODER_LAYERS**2  # full layer-by-layer matrices
    assert {(r["lang"], r["seed"], r["level"], r["estimator"]) for r in enc} == {("en", "0", "frame", "debiased")}
    for r in enc:
        assert -0.2 <= float(r["cka"]) <= 1 + 1e-9 and 0 <= float(r["cka_biased"]) <= 1 + 1e-9
    sso_do = {r["output_y"] for r in enc if r["pair"] == "SSO vs split"}
    assert sso_do == {"surface"}  # the DO's surface branch is compared with SSO
    columns, dec = read_csv(tables / "cka_decoder.csv")
    assert tuple(columns) == CKA_COLUMNS
    assert {r["pair"] for r in dec} == DECODER_PAIRS
    assert len(dec) == len(DECODER_PAIRS) * DECODER_LAYERS**2
    assert {(r["level"], r["n"]) for r in dec} == {("utterance", "6")}
    cross = next(r for r in dec if r["pair"] == "MSO vs SDO")
    assert (cross["model_x"], cross["output_x"], cross["model_y"], cross["output_y"]) == ("mso", "meaning", "do", "surface")

    md = (tables / "cka_encoder.md").read_text()
    assert "| layer | SSO vs MSO | SSO vs DO | MSO vs DO | SSO vs split | MSO vs split | split surface vs split meaning | SSO vs do\\_w | MSO vs do\\_w |" in md
    assert [line.split(" |")[0] for line in md.splitlines() if line.startswith("| ") and line[2].isdigit()] == ["| 0", "| 1"]
    assert "| MSO vs do\\_w meaning |" in (tables / "cka_decoder.md").read_text()
    md = (tables / "cka_decoder.md").read_text()
    assert "| pair | en (layers 0 / 1) |" in md and "| SSO vs MDO |" in md

    columns, ent = read_csv(tables / "entanglement.csv")
    assert tuple(columns) == ENTANGLEMENT_COLUMNS
    by_model = {r["model"]: r for r in ent}
    assert set(by_model) == {"sso+mso", "do", "do_split", "do_w"}
    assert [by_model[m]["label"] for m in ("sso+mso", "do", "do_split", "do_w")] == ["SSO+MSO", "DO", "split", "do_w"]
    so = by_model["sso+mso"]
    assert float(so["excess"]) == 0 and so["so_reference"] == so["index"]
    for model, pair in (("do", "SDO vs MDO"), ("do_split", "split surface vs split meaning"),
                        ("do_w", "do_w surface vs do_w meaning")):  # fmt: skip
        r = by_model[model]
        last = next(x for x in dec if x["pair"] == pair and x["layer_x"] == x["layer_y"] == str(DECODER_LAYERS - 1))
        assert r["pair"] == pair and r["index"] == last["cka"]
        assert math.isclose(float(r["excess"]), float(r["index"]) - float(so["index"]), abs_tol=2e-6)
        assert len(r["layers"].split(";")) == DECODER_LAYERS
    assert float(by_model["do"]["encoder_index"]) == float(by_model["do_w"]["encoder_index"]) == 1.0  # shared encoder
    branch_top = next(r for r in enc if r["pair"] == "split surface vs split meaning" and r["layer_x"] == r["layer_y"] == "1")
    assert by_model["do_split"]["encoder_index"] == branch_top["cka"] and float(branch_top["cka"]) < 1
    bottom = next(r for r in enc if r["pair"] == "split surface vs split meaning" and r["layer_x"] == r["layer_y"] == "0")
    assert math.isclose(float(bottom["cka"]), 1.0, abs_tol=1e-5)  # the shared trunk block

    for name in ("cka_encoder.png", "cka_decoder.png"):
        assert (study_copy / "figures" / name).read_bytes()[:8] == PNG
    assert not list(study_copy.rglob(".*.tmp")) and not list(study_copy.rglob(".*.png"))  # atomic writes


def test_rerun_is_idempotent_and_biased_option(study_copy):
    run(study_copy)
    names = ["cka_encoder.csv", "cka_encoder.md", "cka_decoder.csv", "cka_decoder.md", "entanglement.csv"]
    before = {n: (study_copy / "tables" / n).read_bytes() for n in names}
    out = run(study_copy)
    assert "(cached)" in out
    assert {n: (study_copy / "tables" / n).read_bytes() for n in names} == before
    # --force recomputes, to the same numbers; --biased switches the `cka` column.
    assert "(cached)" not in run(study_copy, "--force", "--biased")
    _, dec = read_csv(study_copy / "tables" / "cka_decoder.csv")
    _, dec_before = read_csv(io.StringIO(before["cka_decoder.csv"].decode()))
    assert [r["cka_biased"] for r in dec] == [r["cka_biased"] for r in dec_before]
    assert all(r["cka"] == r["cka_biased"] and r["estimator"] == "biased" for r in dec)
    assert any(r["cka"] != r_before["cka"] for r, r_before in zip(dec, dec_before, strict=True))


def test_missing_models_are_skipped_and_counted(study_copy):
    (study_copy / "exp" / "en" / "mso" / "seed0" / "model.pt").unlink()
    (study_copy / "exp" / "en" / "do_split" / "seed0" / "model.pt").unlink()
    shutil.rmtree(study_copy / "exp" / "en" / "do_w")
    out = run(study_copy)
    assert "skipped 2 missing model(s) (no model.pt): en/mso/seed0, en/do_split/seed0" in out
    _, enc = read_csv(study_copy / "tables" / "cka_encoder.csv")
    assert {r["pair"] for r in enc} == {"SSO vs DO"}
    _, dec = read_csv(study_copy / "tables" / "cka_decoder.csv")
    assert {r["pair"] for r in dec} == {"SSO vs SDO", "SSO vs MDO", "SDO vs MDO"}
    _, ent = read_csv(study_copy / "tables" / "entanglement.csv")
    assert [r["model"] for r in ent] == ["do"] and ent[0]["so_reference"] == ""  # no SO pair: no reference
    assert "skipped 2 missing model(s)" in (study_copy / "tables" / "cka_encoder.md").read_text()


def _rows(seeds, enc_layers=12, dec_layers=8):
    """Synthetic CKA rows (value = 1 - 0.05 layer + 0.01 seed) in the analysis' row format."""
    pairs = plan_pairs([SSO, MSO, DO])
    labels = {"sso": "SSO", "mso": "MSO", "do": "DO"}
    rows = []
    for seed in seeds:
        for p in pairs:
            n = enc_layers if p.kind == "encoder" else dec_layers
            for a in range(n):
                for b in range(n):
                    v = 1 - 0.05 * max(a, b) + 0.01 * seed
                    rows.append({
                        "lang": "en", "seed": seed, "pair": p.name, "kind": p.kind, "model_x": p.x[0],
                        "output_x": p.x[1], "label_x": labels[p.x[0]], "model_y": p.y[0], "output_y": p.y[1],
                        "label_y": labels[p.y[0]], "layer_x": a, "layer_y": b,
                        "cka_debiased": v, "cka_biased": v, "cka": v, "estimator": "debiased",
                        "level": p.level, "n": 50,
                    })  # fmt: skip
    return rows


def test_tables_show_mean_and_std_over_seeds_beside_the_reference(tmp_path):
    from dualasr.analysis.analyze import entanglement_rows, write_tables

    rows = _rows([0, 2])
    ent = entanglement_rows(rows)
    write_tables(rows, ent, tmp_path)
    enc = (tmp_path / "tables" / "cka_encoder.md").read_text()
    # Layer 11: values 0.45 and 0.47 -> mean 0.46, sample std 0.014; reference study 0.40.
    assert "| 11 | 0.46 ± 0.01 | 0.46 ± 0.01 | 0.46 ± 0.01 | 0.40 |" in enc
    assert "mean ± sample std over seeds (seeds: 0, 2)" in enc
    dec = (tmp_path / "tables" / "cka_decoder.md").read_text()
    assert "| pair | en (layers 0 / 3 / 7) |" in dec
    assert "| SSO vs MSO | 1.01 ± 0.01 / 0.86 ± 0.01 / 0.66 ± 0.01 |" in dec
    assert "| SSO vs MSO, reference study | 0.34 / 0.52 / 0.39 |" in dec
    assert "| SSO vs MDO, reference study | - / - / 0.17 |" in dec
    assert len(ent) == 4 and {r["excess"] for r in ent} == {0.0}
    # The index is the last decoder layer; the mean over matching layers is also kept.
    assert math.isclose(ent[0]["index"], 1 - 0.05 * 7) and math.isclose(ent[0]["index_mean_layers"], 1 - 0.05 * 3.5)
    # One seed: plain means, no "±".
    write_tables(_rows([0], 2, 2), [], tmp_path)
    assert "±" not in (tmp_path / "tables" / "cka_encoder.md").read_text().split("**en: encoder CKA")[1]


def test_a_checkpoint_disagreeing_with_its_run_json_is_an_error(study_copy):
    # do_w's run.json claims task-specific blocks its checkpoint does not have.
    path = study_copy / "exp" / "en" / "do_w" / "seed0" / "run.json"
    info = json.loads(path.read_text())
    info["model_config"]["encoder"]["task_specific_layers"] = 1
    path.write_text(json.dumps(info))
    result = CliRunner().invoke(app, ["analyze", str(study_copy)])
    assert result.exit_code == 2
    assert "do_w/seed0/model.pt: outputs ('surface', 'meaning') with task-specific encoder blocks none" in result.output
    assert "run.json says ('surface', 'meaning') with {'surface': 1, 'meaning': 1}" in result.output


def test_a_renamed_run_folder_is_an_error_naming_both(study_copy):
    (study_copy / "exp" / "en" / "do_w").rename(study_copy / "exp" / "en" / "mine")
    result = CliRunner().invoke(app, ["analyze", str(study_copy)])
    assert result.exit_code == 2
    assert "mine/seed0/run.json: identifies run en/do_w/seed0 but lies in en/mine/seed0" in " ".join(result.output.split())


def test_each_method_with_per_output_encoder_stacks_gets_its_stacks_compared():
    """Branches, adapters and a hierarchy make the two outputs read different
    encoder stacks: the pair of stacks is planned (its last layers give the
    encoder index); a plain DO's outputs read one tensor and get no such pair."""
    configs = {
        "do": {},
        "do_split": {"encoder": {"task_specific_layers": 1}},
        "do_adapt": {"adapters": {"layers": 1, "dim": 8, "kind": "bottleneck"}},
        "do_hier": {"hierarchy": {"surface_layer": 1, "surface_decoder": False, "self_condition": False}},
    }
    runs = [SSO, MSO] + [RunInfo(n, "do", ("surface", "meaning"), "en", 0, model_config=c) for n, c in configs.items()]
    enc = {p.name: (p.x, p.y) for p in plan_pairs(runs) if p.kind == "encoder"}
    for name in ("do_split", "do_adapt", "do_hier"):
        assert enc[f"{name} surface vs {name} meaning"] == ((name, "surface"), (name, "meaning"))
    assert "SDO vs MDO" not in enc
