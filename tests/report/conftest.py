"""A study directory made in a fraction of a second with the stages' own writers:
Table 1 (dualasr.data.stats.write_stats), Table 2 and the ED-gap table and
figure (dualasr.score), training logs (dualasr.train.trainer.MetricsLog), and
CKA tables, entanglement and figures (dualasr.analysis.analyze)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from dualasr.analysis.analyze import entanglement_rows, plot_decoder, plot_encoder, write_tables
from dualasr.data.stats import LanguageStats, write_stats
from dualasr.layout import RunInfo, write_run_info
from dualasr.reference import REFERENCE_CER, REFERENCE_GAP
from dualasr.score.ed_gap import GapRow, plot_ed_gap, write_gaps
from dualasr.score.rates import RateRow, write_rates
from dualasr.score.speakers import SpeakerRow, write_speaker_rates
from dualasr.train.trainer import MetricsLog

BINS = ("0", "1-3", "4-10", ">10")


BASELINE = {"surface": "sso", "meaning": "mso"}
OUTPUTS = {"sso": ("surface",), "mso": ("meaning",), "do": ("surface", "meaning")}


def rate(lang: str, model: str, output: str, cer: float) -> RateRow:
    """A Table 2 row; models other than the SO ones are compared with SSO / MSO."""
    return RateRow(
        lang,
        model,
        output,
        "char",
        (0,),
        16,
        cer,
        math.nan,
        cer * 2,
        math.nan,
        (cer,),
        (cer * 2,),
        REFERENCE_CER.get((lang, model, output)),  # as score.rates.rate_rows sets it
        baseline="" if model == BASELINE[output] else BASELINE[output],
    )


def gap_rows(
    lang: str, output: str, gaps: tuple[float, ...], rho: float, p: float, model: str = "do"
) -> list[GapRow]:
    """Rows of one (language, output): a gap per ED bin with a CI of ±1 point
    around it, and the "all" row carrying Spearman's rho and p."""
    baseline = "sso" if output == "surface" else "mso"
    rows = [
        GapRow(
            lang,
            output,
            "char",
            model,
            baseline,
            b,
            10,
            (0,),
            10.0,
            10.0 + g,
            g,
            math.nan,
            g - 1.0,
            g + 1.0,
            REFERENCE_GAP[(lang, output)][i] if model == "do" else None,  # as score.ed_gap.ed_gap_rows sets it
        )
        for i, (b, g) in enumerate(zip(BINS, gaps, strict=True))
    ]
    mean = sum(gaps) / len(gaps)
    rows.append(GapRow(lang, output, "char", model, baseline, "all", 40, (0,), 10.0, 10.0 + mean, mean, math.nan,
                       mean - 0.5, mean + 0.5, None, rho, p, 40))  # fmt: skip
    return rows


def write_corpus(study: Path) -> None:
    stats = {}
    for lang, bins in (("en", (26, 40, 30, 4)), ("ko", (39, 35, 21, 5))):
        st = LanguageStats(
            Counter(train=80, dev=10, test=10), Counter(train=3600.0, dev=360.0, test=360.0)
        )
        st.bins = Counter(dict(zip(BINS, bins, strict=True)))
        stats[lang] = st
    write_stats(stats, study)


def write_scores(study: Path) -> None:
    rates = [
        rate("en", "sso", "surface", 14.0), rate("en", "mso", "meaning", 4.0),
        rate("en", "do", "surface", 15.5), rate("en", "do", "meaning", 3.0),
    ]  # fmt: skip
    write_rates(rates, study)
    write_speaker_rates([
        SpeakerRow("en", spk, m, o, "char", 8, (0,), cer, math.nan)
        for spk, cer in (("voice-a", 9.0), ("voice-b", 21.0))
        for m, o in (("sso", "surface"), ("mso", "meaning"), ("do", "surface"), ("do", "meaning"))
    ], study)  # fmt: skip
    gaps = gap_rows("en", "surface", (0.3, 1.8, 3.4, 6.7), 0.42, 0.001) + gap_rows(
        "en", "meaning", (-0.2, -0.3, 0.1, 0.2), -0.05, 0.6
    )
    write_gaps(gaps, study, bootstrap=100)
    plot_ed_gap(gaps, study / "figures" / "ed_gap.png", ["en"])


def write_training(study: Path) -> None:
    for model in ("sso", "mso", "do"):
        run = study / "exp" / "en" / model / "seed0"
        run.mkdir(parents=True)
        write_run_info(run, RunInfo(model, model, OUTPUTS[model], "en", 0))
        log = MetricsLog(run / "metrics.csv", enabled=True)
        for epoch in (1, 2, 3):
            log.write(epoch, epoch * 10 - 5, "train", {"loss": 100.0 / epoch + 5, "lr": 1e-3})
            log.write(epoch, epoch * 10, "train", {"loss": 90.0 / epoch + 5, "lr": 1e-3})
            log.write(epoch, epoch * 10, "dev", {"loss": 110.0 / epoch + 8, "seconds": 1.0})


def write_cka(study: Path) -> None:
    """CKA tables, entanglement and figures through the analysis stage's writers,
    so a change of its format breaks these tests rather than only the real study."""
    pairs = {
        "encoder": [("SSO vs MSO", "sso", "surface", "mso", "meaning")],
        "decoder": [
            ("SSO vs MSO", "sso", "surface", "mso", "meaning"),
            ("MSO vs MDO", "mso", "meaning", "do", "meaning"),
            ("SDO vs MDO", "do", "surface", "do", "meaning"),
        ],
    }
    rows = []
    for kind, named in pairs.items():
        for name, mx, ox, my, oy in named:
            for lx in range(3):
                for ly in range(3):
                    v = 0.9 - 0.2 * lx - 0.1 * abs(lx - ly)
                    rows.append({
                        "kind": kind, "lang": "en", "seed": 0, "pair": name,
                        "model_x": mx, "output_x": ox, "label_x": mx.upper(), "model_y": my, "output_y": oy,
                        "label_y": my.upper(),
                        "layer_x": lx, "layer_y": ly, "cka": v, "cka_biased": v + 0.01,
                        "estimator": "debiased", "level": "frame" if kind == "encoder" else "utterance", "n": 16,
                    })  # fmt: skip
    write_tables(rows, entanglement_rows(rows), study)
    plot_encoder(rows, study / "figures" / "cka_encoder.png", ["en"])
    plot_decoder(rows, study / "figures" / "cka_decoder.png", ["en"])


def fabricate_study(study: Path) -> Path:
    """Every input of every report section."""
    study.mkdir(parents=True, exist_ok=True)
    write_corpus(study)
    write_scores(study)
    write_training(study)
    write_cka(study)
    return study


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    return fabricate_study(tmp_path / "study")
