"""Decoding: search over a trained model's outputs (the model holds no search logic;
the CTC best path lives with the model, whose validation reports its error rate)."""

from dualasr.model.asr import ctc_greedy

from .search import (
    CTCPrefixScorer,
    CTCState,
    Hypothesis,
    beam_search,
    decode_dual,
    length_normalised,
)

__all__ = [
    "CTCPrefixScorer",
    "CTCState",
    "Hypothesis",
    "beam_search",
    "ctc_greedy",
    "decode_dual",
    "length_normalised",
]
