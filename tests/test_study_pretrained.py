"""A smoke study with a tiny Whisper SO variant beside the SSO model: trained,
decoded and scored by the same code, with Whisper rows in the CER and ED-gap
tables; and the clear error of a study whose pretrained variant lacks the extra."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from dualasr.config import load_config
from dualasr.learner.package import PackageError, package_run
from dualasr.model.pretrained import PretrainedError
from dualasr.study import run_study
from tests.pretrained_fixtures import save_pretrained_dir

CONF = Path(__file__).resolve().parents[1] / "conf"


def whisper_study_config(tmp_path: Path, weights: Path) -> Path:
    """conf/smoke.yaml shrunk to English, SSO and a Whisper SO baseline on the surface, one epoch."""
    raw = yaml.safe_load((CONF / "smoke.yaml").read_text())
    raw["synth"].update(languages=["en"], sentences={"train": 12, "dev": 4, "test_seen": 4, "test_unseen": 4},
                        prompts=6)  # fmt: skip
    raw["synth"]["ed_shares"] = {"en": raw["synth"]["ed_shares"]["en"]}
    raw["synth"]["heldout_voices"] = {"en": raw["synth"]["heldout_voices"]["en"]}
    raw["train"].update(epochs=1, average_best=1)
    raw["data"] = {"max_utterance_seconds": 15}  # the tiny Whisper's window
    raw["study"] = {"models": {
        "sso": {},
        "whisper_base_surface": {"mode": "sso", "label": "Whisper SO",
                            "model": {"pretrained": {"path": str(weights), "whole": True}}},
    }, "jobs": 1}  # fmt: skip
    path = tmp_path / "whisper_smoke.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.slow
def test_whisper_so_variant_in_a_smoke_study(tmp_path):
    weights = save_pretrained_dir(tmp_path / "weights", "whisper", seconds=15)
    cfg = load_config(whisper_study_config(tmp_path, weights))
    lines: list[str] = []
    out = run_study(cfg, tmp_path / "study", progress=False, echo=lines.append)
    run = out / "exp" / "en" / "whisper_base_surface" / "seed0"
    hyps = (run / "hyp_surface_test_seen.trn").read_text().splitlines()
    assert len(hyps) == 4 and all(h.endswith(")") for h in hyps)  # sclite's "text (id)", as dualasr decode writes
    with open(out / "tables" / "cer.csv") as f:
        rows = list(csv.DictReader(f))
    cer = {(r["split"], r["model"], r["output"]) for r in rows}
    assert {(s, m, "surface") for s in ("test_seen", "test_unseen") for m in ("sso", "whisper_base_surface")} <= cer
    # The reference study's Whisper-base SO row sits beside it (by the recipe's variant name).
    assert {float(r["reference_cer"]) for r in rows if r["model"] == "whisper_base_surface"} == {11.39}
    with open(out / "tables" / "ed_gap.csv") as f:
        gaps = [r for r in csv.DictReader(f) if r["model"] == "whisper_base_surface"]
    assert gaps and {g["ed_bin"] for g in gaps} == {"0", "1-3", "4-10", ">10", "all"}
    assert any("pretrained variants left out of the CKA comparison" in ln for ln in lines)
    assert (out / "report.html").exists()
    with pytest.raises(PackageError, match="pretrained encoder cannot be packaged"):
        package_run(run, tmp_path / "w.dualasr")


def test_a_study_without_the_extra_names_the_variant_and_the_install(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "transformers" else find_spec(name, *a))
    cfg = load_config(whisper_study_config(tmp_path, tmp_path / "absent"))
    with pytest.raises(PretrainedError, match=r"whisper_base_surface.*pip install 'dualasr\[pretrained\]'"):
        run_study(cfg, tmp_path / "study", progress=False, echo=lambda s: None)
    assert not (tmp_path / "study" / "data").exists()


def test_the_whisper_recipe_variants_carry_the_reference_numbers():
    from dualasr.config import model_config
    from dualasr.reference import REFERENCE_CER

    cfg = load_config(CONF / "whisper.yaml")
    whole = {m for m in cfg.study.models if (p := model_config(cfg, m).pretrained) is not None and p.whole}
    assert len(whole) == 4
    for m in whole:
        (output,) = model_config(cfg, m).outputs
        assert all((lang, m, output) in REFERENCE_CER for lang in ("en", "ko")), m


def test_the_cka_analysis_compares_models_of_one_frame_rate():
    from dualasr.study import analysed_models

    whisper, w2v = load_config(CONF / "whisper.yaml"), load_config(CONF / "wav2vec2.yaml")
    assert analysed_models(whisper) == ["sso", "mso", "do"]  # the Conformers; Whisper SO models left out
    assert analysed_models(w2v) == list(w2v.study.models)  # pretrained encoders only: compared together
    only_whisper = {m: v for m, v in whisper.study.models.items() if m.startswith("whisper")}
    cfg = whisper.model_copy(update={"study": whisper.study.model_copy(update={"models": only_whisper})})
    assert analysed_models(cfg) == []
