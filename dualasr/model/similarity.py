"""Differentiable linear-kernel similarity of two representations of the same frames.

One home for the feature-space linear CKA formulas, used both by the training
penalties of the model (:func:`separation_penalty`) and by the analysis
stage (:mod:`dualasr.analysis.cka`, which adds float64, input checks and
streaming around them). It lives in the model package because imports point from
analysis down to model, never back.

X (n, d_x) and Y (n, d_y) hold n examples (rows, e.g. valid encoder frames);
X_c, Y_c are their column-centred copies. Kornblith, Norouzi, Lee & Hinton (2019),
"Similarity of Neural Network Representations Revisited" (``feature_space_linear_cka``)::

    S(X, Y) = ||Y_c^T X_c||_F^2                                 = (n-1)^2 HSIC_0
    S_1(X, Y) = S(X, Y) - n/(n-2) sum_i |x_ci|^2 |y_ci|^2
                + ||X_c||_F^2 ||Y_c||_F^2 / ((n-1)(n-2))        = n(n-3) HSIC_1
    CKA(X, Y) = S(X, Y) / sqrt(S(X, X) S(Y, Y))                 (biased)
                S_1 in place of S                               (debiased)

HSIC_0 is the biased estimator of Gretton et al. (2005); HSIC_1 the unbiased one of
Song, Smola, Gretton, Bedo & Borgwardt (2012, eq. 5); the scale factors cancel in
the ratio. Nothing here checks its inputs: too few rows (n < 4 debiased) or a
constant representation give inf/NaN, which the analysis turns into errors.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

SeparationKind = Literal["orthogonality", "cka"]


def debiased_dot(dot: Tensor, row_norms: Tensor, total_x: Tensor, total_y: Tensor, n: int) -> Tensor:
    """n (n-3) HSIC_1 of centred linear features from ``dot`` = ||Y_c^T X_c||_F^2,
    ``row_norms`` = sum_i |x_ci|^2 |y_ci|^2 and the squared Frobenius norms
    ``total_x`` = ||X_c||_F^2, ``total_y`` (Kornblith et al.'s
    ``_debiased_dot_product_similarity_helper``). Broadcasts over any shape."""
    return dot - n / (n - 2) * row_norms + total_x * total_y / ((n - 1) * (n - 2))


def linear_hsic(x: Tensor, y: Tensor, debiased: bool = True) -> Tensor:
    """Scaled linear HSIC S (biased) or S_1 (debiased) of the module docstring.

    x: (n, d_x), y: (n, d_y), both already column-centred. Returns a scalar
    in their dtype.
    """
    dot = (y.T @ x).square().sum()
    if not debiased:
        return dot
    qx, qy = x.square().sum(1), y.square().sum(1)  # (n,) squared row norms
    return debiased_dot(dot, (qx * qy).sum(), qx.sum(), qy.sum(), x.shape[0])


def cka_ratio(h_xy: Tensor, h_xx: Tensor, h_yy: Tensor) -> Tensor:
    """CKA = HSIC(X, Y) / sqrt(HSIC(X, X) HSIC(Y, Y)); h_xy (L_x, L_y) or scalar,
    h_xx (L_x,) and h_yy (L_y,) or scalars (broadcast as h_xx[:, None] h_yy[None, :])."""
    if h_xy.dim() == 2:
        return h_xy / (h_xx[:, None] * h_yy[None, :]).sqrt()
    return h_xy / (h_xx * h_yy).sqrt()


def linear_cka_terms(x: Tensor, y: Tensor, debiased: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """(S(X, Y), S(X, X), S(Y, Y)) for rows x (n, d_x), y (n, d_y), centred here;
    S_1 when debiased. The analysis checks the self terms before dividing."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    return linear_hsic(x, y, debiased), linear_hsic(x, x, debiased), linear_hsic(y, y, debiased)


def linear_cka(x: Tensor, y: Tensor, debiased: bool = True) -> Tensor:
    """Linear CKA of x (n, d_x) and y (n, d_y), rows = examples, as a differentiable
    scalar in their dtype: S(X, Y) / sqrt(S(X, X) S(Y, Y)), S_1 when debiased."""
    return cka_ratio(*linear_cka_terms(x, y, debiased))


def orthogonality(x: Tensor, y: Tensor) -> Tensor:
    """Difference loss of Bousmalis et al. (2016, "Domain Separation Networks",
    eq. 5) ``||H_s^T H_m||_F^2`` on normalised features: columns centred over the
    n rows, each matrix scaled to unit Frobenius norm::

        P = ||Y_c^T X_c||_F^2 / (||X_c||_F^2 ||Y_c||_F^2)  in [0, 1]

    the numerator of biased linear CKA of the scaled matrices. 0 iff every column
    of Y_c is orthogonal to every column of X_c; 1 iff X_c and Y_c are the same
    rank-1 matrix up to scale; for X = Y it is sum s^4 / (sum s^2)^2 over the
    singular values s of X_c. (The DSN reference code instead scales each row to
    unit norm and averages over the d_x d_y entries, which ties the value to d.)

    x: (n, d_x), y: (n, d_y). Returns a differentiable scalar in their dtype.
    """
    x = x - x.mean(0)
    y = y - y.mean(0)
    return linear_hsic(x, y, debiased=False) / (x.square().sum() * y.square().sum())


def separation_penalty(kind: SeparationKind, h_s: Tensor, h_m: Tensor, mask: Tensor) -> Tensor:
    """Separation penalty P between two encoder outputs over the valid frames of a batch.

    h_s, h_m: (batch, frames, d) surface and meaning encoder outputs; mask:
    (batch, frames) bool, True = valid. The valid frames of the whole batch are the
    n examples (rows); padded frames never enter. ``kind``:

    * ``orthogonality``: :func:`orthogonality` (Bousmalis et al. 2016), in [0, 1];
    * ``cka``: debiased :func:`linear_cka` (Song et al. 2012 HSIC_1), an unbiased
      estimate of a quantity in [0, 1], so it can dip slightly below 0.

    Computed in float32 at least, outside autocast: the centred sums cancel, and
    half precision would lose them. Returns a differentiable scalar.
    """
    dtype = torch.promote_types(h_s.dtype, torch.float32)
    with torch.autocast(h_s.device.type, enabled=False):
        x, y = h_s[mask].to(dtype), h_m[mask].to(dtype)  # (n, d)
        if kind == "orthogonality":
            return orthogonality(x, y)
        if kind == "cka":
            return linear_cka(x, y, debiased=True)
    raise ValueError(f"unknown separation kind {kind!r}; choose orthogonality or cka")
