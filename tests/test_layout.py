"""The study folder layout: run discovery, identity checks and the baseline rule."""

from __future__ import annotations

import json

import pytest

from dualasr.layout import (
    LayoutError,
    RunInfo,
    baseline_of,
    discover_runs,
    parse_seed,
    read_corpora,
    run_dir,
    write_run_info,
)


def info(name: str, mode: str, outputs: tuple[str, ...], seed: int = 0, lang: str = "en", **kw) -> RunInfo:
    return RunInfo(name, mode, outputs, lang, seed, **kw)


SSO, MSO = ("surface",), ("meaning",)
DO = ("surface", "meaning")


def make_runs(study, infos):
    for i in infos:
        d = run_dir(study, i.language, i.name, i.seed)
        d.mkdir(parents=True)
        write_run_info(d, i)


def test_discovery_reads_identity_from_run_json_in_table_order(tmp_path):
    make_runs(tmp_path, [
        info("do_w", "do", DO), info("do", "do", DO), info("mso", "mso", MSO), info("sso", "sso", SSO),
        info("sso", "sso", SSO, seed=1), info("do_split2", "do", DO, label="split (2 blocks)"),
    ])  # fmt: skip
    runs = discover_runs(tmp_path / "exp")
    assert [(r.info.name, r.info.seed) for r in runs] == [
        ("sso", 0), ("sso", 1), ("mso", 0), ("do", 0), ("do_split2", 0), ("do_w", 0),
    ]  # fmt: skip
    split = next(r for r in runs if r.info.name == "do_split2")
    assert split.info.label == "split (2 blocks)" and split.info.outputs == DO and split.info.mode == "do"
    assert split.dir == tmp_path / "exp" / "en" / "do_split2" / "seed0"
    assert split.hyps("test") == split.dir / "hyps_test.jsonl"
    assert runs[0].info.label == "SSO"


def test_a_renamed_folder_is_an_error_naming_both(tmp_path):
    make_runs(tmp_path, [info("do", "do", DO)])
    (tmp_path / "exp" / "en" / "do").rename(tmp_path / "exp" / "en" / "mine")
    with pytest.raises(LayoutError, match=r"mine/seed0/run\.json: identifies run en/do/seed0 but lies in en/mine/seed0"):
        discover_runs(tmp_path / "exp")


def test_a_run_named_like_its_folder_is_what_its_run_json_says(tmp_path):
    # A folder named "mine" holding a dual-output run is a dual-output model, whatever the name suggests.
    make_runs(tmp_path, [info("mine", "do", DO), info("sso", "mso", MSO)])
    runs = {r.info.name: r.info for r in discover_runs(tmp_path / "exp")}
    assert runs["mine"].outputs == DO and runs["mine"].label == "mine"
    assert runs["sso"].outputs == MSO  # the name "sso" does not make it a surface model
    assert baseline_of(runs["mine"], "meaning", list(runs.values())).name == "sso"
    assert baseline_of(runs["mine"], "surface", list(runs.values())) is None


def test_missing_run_json_and_bad_seed_dir_are_errors_naming_the_path(tmp_path):
    (tmp_path / "exp" / "en" / "do" / "seed0").mkdir(parents=True)
    with pytest.raises(LayoutError, match=r"do/seed0/run\.json: missing"):
        discover_runs(tmp_path / "exp")
    with pytest.raises(LayoutError, match=r"do/last: a run directory must be named seed<integer>"):
        parse_seed(tmp_path / "do" / "last")
    assert parse_seed("exp/en/do/seed12") == 12


def test_baseline_rule():
    runs = [info("sso", "sso", SSO), info("sso_big", "sso", SSO), info("mso", "mso", MSO),
            info("mso", "mso", MSO, seed=1), info("do", "do", DO), info("do", "do", DO, lang="ko")]  # fmt: skip
    do = runs[4]
    assert baseline_of(do, "surface", runs).name == "sso"  # preferred among several
    assert baseline_of(do, "meaning", runs) == runs[2]  # same seed: not mso seed 1
    assert baseline_of(runs[5], "surface", runs) is None  # other language
    assert baseline_of(runs[0], "surface", runs) == runs[0]  # the SSO model is its own baseline
    ambiguous = [info("a", "sso", SSO), info("b", "sso", SSO), do]
    with pytest.raises(LayoutError, match=r"several single-output surface models \(a, b\)"):
        baseline_of(do, "surface", ambiguous)


def test_read_corpora(tmp_path):
    with pytest.raises(LayoutError, match=r"corpora\.json: missing"):
        read_corpora(tmp_path)
    (tmp_path / "corpora.json").write_text(json.dumps({"en": "/data/en"}))
    assert read_corpora(tmp_path) == {"en": "/data/en"}
