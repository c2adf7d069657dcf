"""The reference study's numbers that the report shows beside ours.

Cho & Kim (2026), "Multi-task Learning is Not Enough: Representational
Entanglement in Dual-output Second Language Speech Recognition", arXiv
2606.06065; transcribed from ``shared/paper.md`` (mostly secondary write-ups of
the paper: an order of magnitude to compare against, not ground truth).

One place to look them up. Numbers the scorer or the synthesizer already use
are imported from where they live (one copy each): Tables 3 and 4 from
:mod:`dualasr.analysis.analyze`, re-keyed here for the report.

- Table 1 (corpus): :data:`REFERENCE_CORPUS` (utterances per split) and
  :data:`REFERENCE_ED_SHARES` (share of utterances per ED bin 0 / 1-3 / 4-10 / >10).
- Table 2 (test CER %, Conformer models): :data:`REFERENCE_CER`, keyed
  ``(language, model, output)``; the paper's "SO" row is the SSO model's
  surface and the MSO model's meaning.
- Figure 2 (CER gap DO - SO per ED bin, percentage points): :data:`REFERENCE_GAP`.
- Table 3 (encoder linear CKA, SSO vs MSO, layers 0/3/6/9/11 of 12):
  :data:`REFERENCE_CKA_ENCODER`.
- Table 4 (decoder linear CKA, layers 0/3/7 of 8): :data:`REFERENCE_CKA_DECODER`.

CKA keys are ``(language, pair, layer)`` with ``pair`` the two models' names
sorted: ``sso``/``mso`` (single-output models), ``sdo``/``mdo`` (surface /
meaning decoder of the DO model). Layers are the reference models' indices
(0-based, same layer on both sides).
"""

from __future__ import annotations

from dualasr.analysis.analyze import REFERENCE_DECODER, REFERENCE_ENCODER
from dualasr.config import REFERENCE_ED_SHARES
from dualasr.score.ed_gap import REFERENCE_GAP
from dualasr.score.errors import REFERENCE_CER

CITATION = "Cho & Kim (2026), arXiv 2606.06065"

# Table 1: utterances per split (AI-Hub L2 read speech, 80/10/10; "val" is our dev).
REFERENCE_CORPUS: dict[str, dict[str, int]] = {
    "ko": {"train": 33_442, "dev": 4_180, "test": 4_181, "total": 41_803},
    "en": {"train": 57_616, "dev": 7_199, "test": 7_207, "total": 72_022},
}


def _pair(a: str, b: str) -> tuple[str, str]:
    return tuple(sorted((a, b)))  # type: ignore[return-value]


# Tables 3 and 4 live with the analysis that computes their counterparts.
REFERENCE_CKA_ENCODER: dict[tuple[str, tuple[str, str], int], float] = {
    (lang, _pair("sso", "mso"), layer): v
    for lang, layers in REFERENCE_ENCODER.items()
    for layer, v in layers.items()
}
REFERENCE_CKA_DECODER: dict[tuple[str, tuple[str, str], int], float] = {
    (lang, _pair(*pair.lower().split(" vs ")), layer): v
    for (lang, pair), layers in REFERENCE_DECODER.items()
    for layer, v in layers.items()
}

__all__ = [
    "CITATION",
    "REFERENCE_CER",
    "REFERENCE_CKA_DECODER",
    "REFERENCE_CKA_ENCODER",
    "REFERENCE_CORPUS",
    "REFERENCE_ED_SHARES",
    "REFERENCE_GAP",
]
