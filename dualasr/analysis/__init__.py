"""Representation analysis: layer-wise similarity (CKA) between models."""

from dualasr.analysis.cka import (
    LinearCKAAccumulator,
    center_gram,
    cka,
    gram_linear,
    gram_rbf,
    hsic,
    linear_cka,
    pool_utterances,
    rbf_cka,
)

__all__ = [
    "LinearCKAAccumulator",
    "center_gram",
    "cka",
    "gram_linear",
    "gram_rbf",
    "hsic",
    "linear_cka",
    "pool_utterances",
    "rbf_cka",
]
