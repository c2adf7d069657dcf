"""The smoke study runs end to end on a corpus prepared by each preparer:
phone surfaces (L2-ARCTIC, speechocean762) and Korean dual notation
(KsponSpeech, AI Hub) go through training, decoding and scoring."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dualasr.cli import app
from dualasr.config import load_config
from dualasr.data.prepare import PREPARERS
from dualasr.study import run_study

CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.mark.slow
@pytest.mark.parametrize(
    "corpus, fixture, language, surface_unit",
    [
        ("l2arctic", "l2arctic", "en", "phone"),
        ("speechocean762", "speechocean762", "en", "phone"),
        ("ksponspeech", "ksponspeech", "ko", "char"),
        ("aihub-l2", "aihub", "ko", "char"),
    ],
)
def test_smoke_study_on_prepared_corpus(tmp_path, request, corpus, fixture, language, surface_unit):
    root = request.getfixturevalue(fixture)
    prepared = tmp_path / "prepared"
    PREPARERS[corpus](root, prepared, skip_invalid=True)
    cfg = load_config(CONF / "smoke.yaml")
    cfg = cfg.model_copy(update={
        "data": cfg.data.model_copy(update={"corpora": {language: prepared}}),
        "train": cfg.train.model_copy(update={"epochs": 1, "average_best": 1}),
        # The reference study's three models: the smoke config's variants are
        # checked on the synthetic corpus (tests/test_study.py).
        "study": cfg.study.model_copy(update={"models": {n: v for n, v in cfg.study.models.items() if n in ("sso", "mso", "do")}}),
    })  # fmt: skip
    out = run_study(cfg, tmp_path / "study", progress=False, echo=lambda s: None)
    assert not (out / "data").exists()  # the prepared corpus is used in place, nothing synthesized
    tokens = (out / "exp" / language / "sso" / "seed0" / "tokens_surface.json").read_text()
    assert f'"unit": "{surface_unit}"' in tokens
    with open(out / "tables" / "cer.csv") as f:
        rows = {(r["model"], r["output"]): r for r in csv.DictReader(f) if r["language"] == language}
    assert rows[("do", "surface")]["unit"] == surface_unit
    assert rows[("mso", "meaning")]["unit"] == "char"
    # MDD tables exactly for phone-annotated corpora, for every model with a surface output.
    mdd = sorted(p.name for p in (out / "tables").glob("mdd_*.md"))
    assert mdd == ([f"mdd_{language}_do_seed0.md", f"mdd_{language}_sso_seed0.md"] if surface_unit == "phone" else [])
    if mdd:
        assert "| TA | FR | FA | TR |" in (out / "tables" / mdd[0]).read_text().replace(" ---:|", "")
        r = CliRunner().invoke(app, ["score", str(out), "--bootstrap", "50"])
        assert r.exit_code == 0, r.output
        assert f"mdd_{language}_do_seed0.md" in r.output
