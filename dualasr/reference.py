"""The reference study's numbers, in one low module that the synthesizer's
config, score, analysis and report all import.

Cho & Kim (2026), "Multi-task Learning is Not Enough: Representational
Entanglement in Dual-output Second Language Speech Recognition", arXiv
2606.06065; transcribed from ``shared/paper.md`` (mostly secondary write-ups of
the paper: an order of magnitude to compare against, not ground truth).

Models are named as the study's variants that reproduce them: ``sso``, ``mso``
(single-output) and ``do`` (dual-output), and ``conf/whisper.yaml``'s
``whisper_{base,small}_{surface,meaning}`` (Whisper fine-tuned on one output);
a study's variant of another name has no reference number.
"""

from __future__ import annotations

CITATION = "Cho & Kim (2026), arXiv 2606.06065"

# Table 1: utterances per split (AI-Hub L2 read speech, 80/10/10; "val" is our dev).
REFERENCE_CORPUS: dict[str, dict[str, int]] = {
    "ko": {"train": 33_442, "dev": 4_180, "test": 4_181, "total": 41_803},
    "en": {"train": 57_616, "dev": 7_199, "test": 7_207, "total": 72_022},
}

# Table 1: share of utterances per ED bin 0 / 1-3 / 4-10 / >10.
REFERENCE_ED_SHARES: dict[str, list[float]] = {
    "ko": [0.388, 0.354, 0.206, 0.052],
    "en": [0.261, 0.403, 0.295, 0.042],
}

# Table 2: test CER (%), keyed (language, model, output).
# The paper's SO row is the SSO model's surface and the MSO model's meaning.
REFERENCE_CER: dict[tuple[str, str, str], float] = {
    ("ko", "sso", "surface"): 11.14, ("ko", "mso", "meaning"): 1.60,
    ("ko", "do", "surface"): 11.34, ("ko", "do", "meaning"): 0.77,
    ("en", "sso", "surface"): 13.78, ("en", "mso", "meaning"): 3.87,
    ("en", "do", "surface"): 15.08, ("en", "do", "meaning"): 3.19,
    # The Whisper SO rows: a Whisper model fine-tuned on each output separately.
    ("ko", "whisper_base_surface", "surface"): 10.05, ("ko", "whisper_base_meaning", "meaning"): 4.62,
    ("en", "whisper_base_surface", "surface"): 11.39, ("en", "whisper_base_meaning", "meaning"): 0.55,
    ("ko", "whisper_small_surface", "surface"): 6.76, ("ko", "whisper_small_meaning", "meaning"): 0.54,
    ("en", "whisper_small_surface", "surface"): 11.20, ("en", "whisper_small_meaning", "meaning"): 0.27,
}  # fmt: skip

# Figure 2: CER gap DO - SO (percentage points) per ED bin 0 / 1-3 / 4-10 / >10.
REFERENCE_GAP: dict[tuple[str, str], tuple[float, float, float, float]] = {
    ("ko", "surface"): (0.19, 0.45, 1.03, -0.12),
    ("ko", "meaning"): (-0.35, -0.58, -0.91, -1.96),
    ("en", "surface"): (0.28, 1.85, 3.42, 6.72),
    ("en", "meaning"): (-0.20, -0.85, -1.72, -3.51),
}

# Tables 3 and 4: linear CKA at matching layers, keyed (kind, language, x, y)
# with x, y = (model, output); layers are the reference models' indices
# (0-based; 12 encoder and 8 decoder blocks, REFERENCE_LAYERS).
_SSO, _MSO, _SDO, _MDO = ("sso", "surface"), ("mso", "meaning"), ("do", "surface"), ("do", "meaning")
REFERENCE_CKA: dict[tuple[str, str, tuple[str, str], tuple[str, str]], dict[int, float]] = {
    ("encoder", "ko", _SSO, _MSO): {0: 0.95, 3: 0.43, 6: 0.56, 9: 0.45, 11: 0.56},
    ("encoder", "en", _SSO, _MSO): {0: 0.91, 3: 0.89, 6: 0.75, 9: 0.66, 11: 0.40},
    ("decoder", "ko", _SSO, _MSO): {0: 0.82, 3: 0.52, 7: 0.53},
    ("decoder", "en", _SSO, _MSO): {0: 0.34, 3: 0.52, 7: 0.39},
    ("decoder", "ko", _MSO, _MDO): {0: 0.84, 3: 0.85, 7: 0.88},
    ("decoder", "en", _MSO, _MDO): {0: 0.43, 3: 0.59, 7: 0.24},
    ("decoder", "en", _MSO, _SDO): {7: 0.44},
    ("decoder", "en", _SSO, _MDO): {7: 0.17},
}
REFERENCE_LAYERS: dict[str, int] = {"encoder": 12, "decoder": 8}


def reference_cka(kind: str, lang: str, x: tuple[str, str], y: tuple[str, str]) -> dict[int, float]:
    """Layer -> the reference study's CKA of the pair ``x`` vs ``y`` (either order); {} when unreported."""
    return REFERENCE_CKA.get((kind, lang, x, y)) or REFERENCE_CKA.get((kind, lang, y, x)) or {}
