"""Centered kernel alignment (CKA): how alike two layers' representations are.

CKA compares two representations of the same n examples, X (n, d_x) and Y (n, d_y)
(Kornblith, Norouzi, Lee & Hinton 2019, "Similarity of Neural Network
Representations Revisited", eq. 3)::

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))

where K, L are the (n, n) Gram matrices of a kernel on the rows of X and Y
(linear: K = X X^T; RBF: K_ij = exp(-|x_i - x_j|^2 / (2 sigma^2))) and HSIC is the
Hilbert-Schmidt independence criterion, estimated

* biased (Gretton, Bousquet, Smola & Schoelkopf 2005)::

      HSIC_0(K, L) = tr(K H L H) / (n - 1)^2,        H = I - 1 1^T / n

* unbiased (Song, Smola, Gretton, Bedo & Borgwardt 2012, eq. 5), with K~, L~ the
  Gram matrices with their diagonal set to 0::

      HSIC_1(K, L) = [tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((n-1)(n-2))
                      - 2/(n-2) 1^T K~ L~ 1] / (n (n-3))

  computed as <U(K), U(L)> / (n (n-3)) with the U-centring of Szekely & Rizzo
  (2014), exactly as Kornblith et al.'s ``center_gram(gram, unbiased=True)``.
  CKA built from HSIC_1 is "debiased CKA"; it needs n >= 4.

For the linear kernel the same values come from feature space (Kornblith et al.'s
``feature_space_linear_cka``): with X, Y column-centred::

    biased:   CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)
    debiased: every ||A^T B||_F^2 above becomes
              ||A^T B||_F^2 - n/(n-2) sum_i |a_i|^2 |b_i|^2 + ||A||_F^2 ||B||_F^2 / ((n-1)(n-2))

(the (n-1)^2 and n(n-3) factors cancel in the ratio). These differentiable torch
formulas live in :mod:`dualasr.model.similarity`, shared with the model's CKA and
orthogonality separation penalties; `linear_cka` runs them in float64 behind this
module's checks, and the accumulator combines its streamed sums with the same
debiasing and ratio.

Streaming
---------
`LinearCKAAccumulator` gives **exact** linear CKA over a whole data set, streamed:
it sums, in float64, the sufficient statistics of the feature-space formulas
(X^T Y for every layer pair, X_a^T X_a per layer, column sums and, for the
debiased form, sums of per-row squared norms), chunk by chunk, so memory is
O((sum of d_x) x (sum of d_y)), independent of the number of frames. The analysis
stage uses it for every CKA table: it gives the full-data value rather than an
estimate from sub-samples, uses every frame, and does not depend on the order of
the data or on how it was batched. The Gram-matrix functions (`gram_linear`,
`gram_rbf`, `center_gram`, `hsic`, `cka`, `rbf_cka`) are Kornblith et al.'s
formulas, against which the accumulator is checked; they hold (n, n) matrices,
so they suit a few thousand examples at most.

The accumulator takes model outputs batch by batch (``update``): a list of layers,
each (batch, frames, dim), with a boolean padding mask (batch, frames), True = valid.
``level="frame"`` compares aligned frames (same audio, same subsampling);
``level="utterance"`` compares per-utterance means (`pool_utterances`), each model
with its own mask, for outputs whose sequences differ (e.g. the token sequences of
the surface and meaning decoders).

Every estimator defaults to debiased CKA (HSIC_1), as the analysis stage does.
Degenerate inputs never give a silent NaN: fewer than 4 examples with the debiased
estimator (2 with the biased one), a representation constant over the examples
(zero centred Gram matrix: CKA is 0/0), a non-positive debiased self-HSIC, or an
RBF bandwidth of 0 raise ``ValueError``.

Inputs may be NumPy arrays or torch tensors; Gram matrices and pooled features are
returned as torch tensors, CKA values as Python floats or (n_layers_x, n_layers_y)
NumPy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from dualasr.model.similarity import cka_ratio, debiased_dot, linear_cka_terms

Array = np.ndarray | torch.Tensor
Level = Literal["frame", "utterance"]

# A centred squared norm (||HKH||_F^2, or ||X_c||_F^2 in feature space) at or below
# this fraction of the uncentred one is rounding error (1e-10 in norm): the
# representation is constant over the examples.
_CONSTANT_RTOL = 1e-20


# ---------------------------------------------------------------------------
# Gram matrices and HSIC (Kornblith et al. 2019 reference formulas)
# ---------------------------------------------------------------------------


def gram_linear(x: Array) -> torch.Tensor:
    """Linear-kernel Gram matrix K = X X^T.

    x: (n, d). Returns (n, n) float64.
    """
    x = _as_matrix(x, "x", torch.float64)
    return x @ x.T


def gram_rbf(x: Array, threshold: float = 1.0) -> torch.Tensor:
    """RBF-kernel Gram matrix with a median-heuristic bandwidth.

    K_ij = exp(-|x_i - x_j|^2 / (2 threshold^2 m)), m = the median of |x_k - x_l|^2
    over all n^2 ordered pairs, diagonal included: Kornblith et al. (2019)'s
    ``gram_rbf(x, threshold)``: bandwidth sigma = threshold x sqrt(m), a fraction
    of the median distance. x: (n, d). Returns (n, n) float64.

    Raises ValueError when m = 0 (more than half of the pairs coincide, e.g. a
    constant representation): the bandwidth would be 0.
    """
    if not threshold > 0:
        raise ValueError(f"RBF threshold must be > 0, got {threshold}")
    x = _as_matrix(x, "x", torch.float64)
    x = x - x.mean(0)  # distances do not change; smaller norms cancel less
    dot = x @ x.T
    sq_norms = dot.diagonal()
    sq_dist = (sq_norms[:, None] + sq_norms[None, :] - 2 * dot).clamp_min_(0)
    sq_dist.fill_diagonal_(0)
    # np.median averages the two middle values like the reference; torch.median does not.
    median = float(np.median(sq_dist.cpu().numpy()))
    if median <= 0:
        raise ValueError(
            "RBF bandwidth is 0: the median squared distance between the "
            f"{x.shape[0]} examples is 0 (constant or mostly duplicated representation)"
        )
    return torch.exp(-sq_dist / (2 * threshold**2 * median))


def center_gram(gram: Array, unbiased: bool = False) -> torch.Tensor:
    """Centre a Gram matrix, exactly as Kornblith et al.'s ``center_gram``.

    biased: H K H with H = I - 1 1^T / n, so <HKH, HLH> = (n-1)^2 HSIC_0.
    unbiased: U-centring (Szekely & Rizzo 2014): diagonal set to 0, then
    K_ij - r_i - r_j with r = K 1 / (n-2) - 1^T K 1 / (2 (n-1)(n-2)), diagonal set
    to 0 again, so <U(K), U(L)> = n (n-3) HSIC_1 of Song et al. (2012).

    gram: (..., n, n) symmetric. Returns (..., n, n) float64.
    """
    g = _as_tensor(gram, torch.float64)
    if g.dim() < 2 or g.shape[-1] != g.shape[-2]:
        raise ValueError(f"a Gram matrix must be (..., n, n), got {tuple(g.shape)}")
    if not torch.allclose(g, g.transpose(-1, -2)):
        raise ValueError("a Gram matrix must be symmetric")
    return _center(g, unbiased)


def hsic(gram_x: Array, gram_y: Array, debiased: bool = True) -> float:
    """HSIC of two (n, n) Gram matrices of the same n examples.

    biased: HSIC_0 = tr(K H L H) / (n-1)^2 (Gretton et al. 2005);
    debiased: HSIC_1 = <U(K), U(L)> / (n (n-3)) (Song et al. 2012, eq. 5).
    """
    kx, ky = _gram_pair(gram_x, gram_y, debiased)
    n = kx.shape[-1]
    return float((_center(kx, debiased) * _center(ky, debiased)).sum()) / _hsic_scale(n, debiased)


def cka(gram_x: Array, gram_y: Array, debiased: bool = True) -> float:
    """CKA of two (n, n) Gram matrices: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)).

    Kornblith et al. (2019)'s ``cka(gram_x, gram_y, debiased)``; debiased uses
    HSIC_1 (Song et al. 2012). Raises ValueError for n < 4 (debiased) or n < 2,
    a constant representation, or a non-positive debiased self-HSIC.
    """
    kx, ky = _gram_pair(gram_x, gram_y, debiased)
    n = kx.shape[-1]
    cx, cy = _center(kx, debiased), _center(ky, debiased)
    h_xy = (cx * cy).sum().reshape(1, 1)
    h_xx = _check_self_hsic((cx * cx).sum().reshape(1), (kx * kx).sum().reshape(1), n, "gram_x")
    h_yy = _check_self_hsic((cy * cy).sum().reshape(1), (ky * ky).sum().reshape(1), n, "gram_y")
    return float(cka_ratio(h_xy, h_xx, h_yy)[0, 0])


def linear_cka(x: Array, y: Array, debiased: bool = True) -> float:
    """Linear CKA of X (n, d_x) and Y (n, d_y), rows = examples.

    The feature-space formulas of the module docstring (Kornblith et al. 2019,
    ``feature_space_linear_cka``) in float64: the same torch code as the model's
    CKA separation penalty (:func:`dualasr.model.similarity.linear_cka_terms`),
    with the checks of this module around it.
    """
    x = _as_matrix(x, "x", torch.float64)
    y = _as_matrix(y, "y", torch.float64).to(x.device)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same rows (examples), got {x.shape[0]} and {y.shape[0]}")
    n = x.shape[0]
    _check_count(n, debiased)
    for side, h in (("x", x), ("y", y)):
        if not torch.isfinite(h).all():
            raise ValueError(f"{side} has non-finite values")
        # ||X_c||_F^2 against ||X||_F^2, as the accumulator: a constant has nothing left.
        if not (h - h.mean(0)).square().sum() > _CONSTANT_RTOL * h.square().sum():
            raise ValueError(_constant_message(side, n))
    h_xy, h_xx, h_yy = linear_cka_terms(x, y, debiased)
    for side, h in (("x", h_xx), ("y", h_yy)):
        if not h > 0:
            raise ValueError(_negative_message(side, n))
    return float(cka_ratio(h_xy, h_xx, h_yy))


def rbf_cka(x: Array, y: Array, threshold: float = 1.0, debiased: bool = True) -> float:
    """RBF CKA of X (n, d_x) and Y (n, d_y): `cka` of the two `gram_rbf` matrices,
    each with bandwidth threshold x its own median distance."""
    return cka(gram_rbf(x, threshold), gram_rbf(y, threshold), debiased=debiased)


def pool_utterances(h: Array, mask: Array) -> torch.Tensor:
    """Mean over the valid frames (or tokens) of each utterance.

    h: (batch, frames, dim); mask: bool (batch, frames), True = valid.
    Returns (batch, dim) in h's floating dtype. Padded values never enter the mean
    (not even NaN ones). Raises ValueError if an utterance has no valid frame.
    """
    h = _as_tensor(h)
    mask = _as_mask(mask)
    if h.dim() != 3 or mask.shape != h.shape[:2]:
        raise ValueError(
            f"expected h (batch, frames, dim) and mask (batch, frames), got "
            f"{tuple(h.shape)} and {tuple(mask.shape)}"
        )
    counts = mask.sum(1)
    empty = (counts == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"utterances {empty} of the batch have no valid frame to average")
    summed = torch.where(mask[..., None], h, torch.zeros((), dtype=h.dtype)).sum(1)
    return summed / counts[:, None].to(h.dtype)


# ---------------------------------------------------------------------------
# Streaming: feed model outputs batch by batch
# ---------------------------------------------------------------------------


class LinearCKAAccumulator:
    """Exact linear CKA between every layer of model X and every layer of model Y,
    streamed over a data set (Kornblith et al. 2019 feature-space formulas).

    Per example row x_i (all X layers side by side, D_x = sum of d_x) and y_i,
    shifted by a constant t (the mean of the first batch), it keeps in float64:
    n; S_x = sum x_i; S_y; C = sum x_i y_i^T (D_x, D_y); per layer X_a^T X_a
    and Y_b^T Y_b; and for the debiased form, with q_ai = |x_ai|^2, r_bi = |y_bi|^2:
    sum q_a, sum r_b, sum q_a r_b, sum q_a^2, sum r_b^2, sum r_b x_ai, sum q_a y_bi,
    sum q_a x_ai, sum r_b y_bi. Memory is O(D_x D_y), whatever the number of frames.
    `compute` centres these (X_c^T Y_c = C - n m_x m_y^T) and applies the formulas
    of the module docstring, so the result equals `linear_cka` on all rows at once.

    Why the shift: CKA is invariant to it, and the centring at the end subtracts
    n m m^T from sums that grow with |x_i - t|^2 (|x_i - t|^4 for the debiased
    row norms), so their rounding error scales with |m - t|^2 / var relative to
    what is left. The first batch's mean puts t within a few standard errors of
    the data mean; a single row (the first example, say) can lie anywhere, and
    with float32 products a far one gives a wrong debiased value or a spurious
    non-positive self-HSIC. One leading outlier in a first batch of b rows
    moves t by only 1/b of its distance.

    matmul_dtype: dtype of each chunk's X^T Y product before it is added to the
    float64 sums. None = float64 if the batch is float64, else float32: model
    outputs (float32) are not up-cast, which halves the time of the dominant cost
    (2 n D_x D_y flops); an exact float64 result needs float64 inputs or
    matmul_dtype=torch.float64.

    Example::

        acc = LinearCKAAccumulator(12, 12)
        for batch in loader:
            acc.update(enc_sso(batch), enc_mso(batch), mask=batch.frame_mask)
        table = acc.compute()  # (12, 12)
    """

    def __init__(
        self,
        n_layers_x: int,
        n_layers_y: int,
        level: Level = "frame",
        matmul_dtype: torch.dtype | None = None,
    ) -> None:
        if n_layers_x < 1 or n_layers_y < 1:
            raise ValueError(
                f"need at least one layer per model, got {n_layers_x} and {n_layers_y}"
            )
        if level not in ("frame", "utterance"):
            raise ValueError(f"level must be 'frame' or 'utterance', got {level!r}")
        self.n_layers_x = n_layers_x
        self.n_layers_y = n_layers_y
        self.level = level
        self._dims_x: list[int] | None = None
        self._dims_y: list[int] | None = None
        self.matmul_dtype = matmul_dtype
        self.n_examples = 0
        self._state: dict[str, torch.Tensor] | None = None
        self._self_x: list[torch.Tensor] = []  # X_a^T X_a per layer
        self._self_y: list[torch.Tensor] = []

    def update(
        self,
        xs: Sequence[Array],
        ys: Sequence[Array],
        mask: Array | None = None,
        mask_y: Array | None = None,
    ) -> None:
        """Add one batch.

        xs: n_layers_x outputs of model X, each (batch, frames, d_x[a]);
        ys: n_layers_y outputs of model Y, each (batch, frames_y, d_y[b]);
        mask: bool (batch, frames), True = valid frame; None = all valid.
        level="frame": frames must be aligned, so ys share xs's (batch, frames) and
        ``mask`` selects the same frames from both (``mask_y`` must be None or equal).
        level="utterance": each model's layers are averaged over its own valid
        frames/tokens (``mask`` for xs, ``mask_y`` for ys, default ``mask``).
        Layers may also be given as (n, d) rows that are all used (no masks).
        """
        x_rows, y_rows = self._rows(xs, ys, mask, mask_y)
        if x_rows[0].shape[0] == 0:
            return
        dims_x = [h.shape[1] for h in x_rows]
        dims_y = [h.shape[1] for h in y_rows]
        if self._dims_x is None:
            self._dims_x, self._dims_y = dims_x, dims_y
        elif dims_x != self._dims_x or dims_y != self._dims_y:
            raise ValueError(
                f"layer dims changed between batches: x {self._dims_x} -> {dims_x}, "
                f"y {self._dims_y} -> {dims_y}"
            )
        self._update_rows(x_rows, y_rows)

    def _rows(self, xs, ys, mask, mask_y) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The (n, d) example rows of every layer of this batch."""
        xs = [_as_tensor(h).detach() for h in xs]
        ys = [_as_tensor(h).detach() for h in ys]
        if len(xs) != self.n_layers_x or len(ys) != self.n_layers_y:
            raise ValueError(
                f"expected {self.n_layers_x} layers in xs and {self.n_layers_y} in ys, "
                f"got {len(xs)} and {len(ys)}"
            )
        ranks = {h.dim() for h in xs + ys}
        if ranks == {2}:
            if mask is not None or mask_y is not None:
                raise ValueError(
                    "masks apply to (batch, frames, dim) layers; (n, dim) rows are all used"
                )
            _same_leading(xs + ys, 1, "xs and ys")
            return xs, ys
        if ranks != {3}:
            raise ValueError("layers must all be (batch, frames, dim), or all (n, dim)")
        _same_leading(xs, 2, "xs")
        _same_leading(ys, 2, "ys")
        shape_x, shape_y = tuple(xs[0].shape[:2]), tuple(ys[0].shape[:2])
        mask = torch.ones(shape_x, dtype=torch.bool) if mask is None else _as_mask(mask)
        if tuple(mask.shape) != shape_x:
            raise ValueError(f"mask is {tuple(mask.shape)}, xs are (batch, frames) = {shape_x}")
        mask = mask.to(xs[0].device)
        if self.level == "frame":
            if shape_y != shape_x:
                raise ValueError(
                    f"frame-level CKA needs aligned frames, but xs are {shape_x} and ys "
                    f"{shape_y} (batch, frames); use level='utterance'"
                )
            if mask_y is not None and not torch.equal(_as_mask(mask_y).to(mask.device), mask):
                raise ValueError(
                    "frame-level CKA compares aligned frames, so one mask serves both "
                    "models; got a different mask_y (use level='utterance')"
                )
            return [h[mask] for h in xs], [h[mask] for h in ys]
        mask_y = mask if mask_y is None else _as_mask(mask_y)
        if tuple(mask_y.shape) != shape_y:
            raise ValueError(
                f"mask_y (default: mask) is {tuple(mask_y.shape)}, ys are (batch, frames) = {shape_y}"
            )
        return [pool_utterances(h, mask) for h in xs], [pool_utterances(h, mask_y) for h in ys]


    def _update_rows(self, x_rows, y_rows) -> None:
        f64 = torch.float64
        dtype = self.matmul_dtype
        if dtype is None:
            dtype = f64 if any(h.dtype == f64 for h in x_rows + y_rows) else torch.float32
        device = x_rows[0].device
        x = torch.cat([h.to(device, dtype) for h in x_rows], 1)  # (n, D_x)
        y = torch.cat([h.to(device, dtype) for h in y_rows], 1)  # (n, D_y)
        if self._state is None:
            self._start(x, y)
        st = self._state
        x = x - st["shift_x"].to(dtype)
        y = y - st["shift_y"].to(dtype)
        # Column sums first: a NaN or inf anywhere in a layer shows up in them.
        sum_x, sum_y = x.sum(0).to(f64), y.sum(0).to(f64)
        _check_finite(sum_x, self._dims_x, "xs")
        _check_finite(sum_y, self._dims_y, "ys")
        st["sum_x"] += sum_x
        st["sum_y"] += sum_y
        # The dominant cost, 2 n D_x D_y flops.
        st["cross"] += x.T @ y
        for acc, block in zip(self._self_x, _self_products(x, self._dims_x), strict=True):
            acc += block
        for acc, block in zip(self._self_y, _self_products(y, self._dims_y), strict=True):
            acc += block
        # Row-norm statistics of the debiased estimator, O(n D (L_x + L_y)) flops:
        # q (n, L_x) and r (n, L_y) are the per-layer squared row norms.
        q = (x * x) @ st["onehot_x"].to(dtype)
        r = (y * y) @ st["onehot_y"].to(dtype)
        qr = torch.cat([q, r], 1)
        xqr, yqr = (x.T @ qr).to(f64), (y.T @ qr).to(f64)  # (D_x, L_x + L_y), (D_y, L_x + L_y)
        lx = self.n_layers_x
        st["rx"] += xqr[:, lx:]
        st["qy"] += yqr[:, :lx]
        st["qx_x"] += xqr[:, :lx].gather(1, st["layer_x"][:, None]).squeeze(1)
        st["ry_y"] += yqr[:, lx:].gather(1, st["layer_y"][:, None]).squeeze(1)
        q, r = q.to(f64), r.to(f64)
        st["q_x"] += q.sum(0)
        st["q_y"] += r.sum(0)
        st["qq_xy"] += q.T @ r
        st["qq_xx"] += q.square().sum(0)
        st["qq_yy"] += r.square().sum(0)
        self.n_examples += x.shape[0]

    def _start(self, first_x: torch.Tensor, first_y: torch.Tensor) -> None:
        """Allocate the float64 sums; the mean of the first batch (n, D) becomes the shift."""
        f64, device = torch.float64, first_x.device
        dx, dy = sum(self._dims_x), sum(self._dims_y)
        lx, ly = self.n_layers_x, self.n_layers_y

        def zeros(*shape: int) -> torch.Tensor:
            return torch.zeros(shape, dtype=f64, device=device)

        layer_x = torch.repeat_interleave(
            torch.arange(lx, device=device), torch.tensor(self._dims_x, device=device)
        )
        layer_y = torch.repeat_interleave(
            torch.arange(ly, device=device), torch.tensor(self._dims_y, device=device)
        )
        self._state = {
            "shift_x": first_x.to(f64).mean(0),
            "shift_y": first_y.to(f64).mean(0),
            "layer_x": layer_x,
            "layer_y": layer_y,  # layer of each column
            "onehot_x": torch.nn.functional.one_hot(layer_x, lx).to(f64),  # (D_x, L_x)
            "onehot_y": torch.nn.functional.one_hot(layer_y, ly).to(f64),
            "sum_x": zeros(dx),
            "sum_y": zeros(dy),
            "cross": zeros(dx, dy),
            "q_x": zeros(lx),
            "q_y": zeros(ly),
            "qq_xy": zeros(lx, ly),
            "qq_xx": zeros(lx),
            "qq_yy": zeros(ly),
            "rx": zeros(dx, ly),
            "qy": zeros(dy, lx),
            "qx_x": zeros(dx),
            "ry_y": zeros(dy),
        }
        self._self_x = [zeros(d, d) for d in self._dims_x]
        self._self_y = [zeros(d, d) for d in self._dims_y]

    def compute(self, debiased: bool = True) -> np.ndarray:
        """Linear CKA for every layer pair: (n_layers_x, n_layers_y) float64.

        debiased=True (default, as the analysis stage): HSIC_1 (Song et al. 2012),
        which does not drift towards 1 when the examples are few for their
        dimension (d >> n, as utterance-level decoder states); debiased=False is
        the standard linear CKA of Kornblith et al. (2019) used by the reference
        study. With the n of a test set of frames (n >> d) the two differ little.
        """
        n = self.n_examples
        _check_count(n, debiased)
        st = self._state
        mx, my = st["sum_x"] / n, st["sum_y"] / n
        sx, sy = _slices(self._dims_x), _slices(self._dims_y)

        def self_similarity(blocks, slices, m, q, qq, qv, side):
            out = []
            for a, (raw, sl) in enumerate(zip(blocks, slices, strict=True)):
                ma = m[sl]
                total = q[a] - n * ma @ ma  # ||X_c||_F^2
                if not total > _CONSTANT_RTOL * q[a]:
                    raise ValueError(_constant_message(f"{side}[{a}]", n))
                cov = raw - n * torch.outer(ma, ma)
                h = cov.square().sum()
                if debiased:
                    mm = ma @ ma
                    row_norms = (
                        qq[a] - 4 * ma @ qv[sl] + 2 * mm * q[a] + 4 * ma @ raw @ ma - 3 * n * mm**2
                    )
                    h = debiased_dot(h, row_norms, total, total, n)
                    if not h > 0:
                        raise ValueError(_negative_message(f"{side}[{a}]", n))
                out.append((float(h), float(total)))
            return out

        hx = self_similarity(self._self_x, sx, mx, st["q_x"], st["qq_xx"], st["qx_x"], "xs")
        hy = self_similarity(self._self_y, sy, my, st["q_y"], st["qq_yy"], st["ry_y"], "ys")
        out = np.empty((self.n_layers_x, self.n_layers_y))
        for a, sla in enumerate(sx):
            ma = mx[sla]
            for b, slb in enumerate(sy):
                mb = my[slb]
                raw = st["cross"][sla, slb]
                h = (raw - n * torch.outer(ma, mb)).square().sum()
                if debiased:
                    row_norms = (
                        st["qq_xy"][a, b]
                        - 2 * ma @ st["rx"][sla, b]
                        - 2 * mb @ st["qy"][slb, a]
                        + 4 * ma @ raw @ mb
                        + (ma @ ma) * st["q_y"][b]
                        + (mb @ mb) * st["q_x"][a]
                        - 3 * n * (ma @ ma) * (mb @ mb)
                    )
                    h = debiased_dot(h, row_norms, hx[a][1], hy[b][1], n)
                out[a, b] = float(h) / math.sqrt(hx[a][0] * hy[b][0])
        return out


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _as_tensor(x: Array, dtype: torch.dtype | None = None) -> torch.Tensor:
    t = torch.as_tensor(x)
    if dtype is not None:
        return t.to(dtype)
    if not t.is_floating_point():
        t = t.to(torch.float64)
    return t


def _as_matrix(x: Array, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    t = _as_tensor(x, dtype)
    if t.dim() != 2:
        raise ValueError(f"{name} must be (n, d), got shape {tuple(t.shape)}")
    return t


def _as_mask(mask: Array) -> torch.Tensor:
    m = torch.as_tensor(mask)
    if m.dtype != torch.bool:
        raise TypeError(f"a padding mask must be boolean (True = valid frame), got {m.dtype}")
    return m


def _same_leading(hs: list[torch.Tensor], k: int, name: str) -> None:
    shapes = {tuple(h.shape[:k]) for h in hs}
    if len(shapes) > 1:
        raise ValueError(
            f"all layers of {name} must share their first {k} dims, got {sorted(shapes)}"
        )


def _slices(dims: list[int]) -> list[slice]:
    ends = np.cumsum([0, *dims]).tolist()
    return [slice(a, b) for a, b in zip(ends[:-1], ends[1:], strict=True)]


def _check_finite(column_sums: torch.Tensor, dims: list[int], side: str) -> None:
    """column_sums: (D,) sums of a batch's rows; a NaN/inf row value makes its column's sum non-finite."""
    bad = ~torch.isfinite(column_sums)
    if bad.any():
        for i, sl in enumerate(_slices(dims)):
            if bad[sl].any():
                raise ValueError(f"{side}[{i}] has non-finite values in valid frames")


def _self_products(x: torch.Tensor, dims: list[int]) -> list[torch.Tensor]:
    """X_a^T X_a (d_a, d_a) for each layer a of x (n, sum of d_a)."""
    if len(set(dims)) == 1:  # one batched product: much faster than a loop of small ones
        v = x.view(x.shape[0], len(dims), dims[0])
        return list(torch.bmm(v.permute(1, 2, 0), v.permute(1, 0, 2)))
    return [x[:, sl].T @ x[:, sl] for sl in _slices(dims)]


def _check_count(n: int, debiased: bool) -> None:
    need = 4 if debiased else 2
    if n < need:
        kind = "debiased (unbiased HSIC)" if debiased else "biased"
        raise ValueError(f"{kind} CKA needs at least {need} examples, got {n}")


def _hsic_scale(n: int, debiased: bool) -> float:
    return n * (n - 3) if debiased else (n - 1) ** 2


def _center(g: torch.Tensor, unbiased: bool) -> torch.Tensor:
    """Kornblith et al.'s center_gram, batched over leading dims; no checks."""
    n = g.shape[-1]
    g = g.clone()
    if unbiased:
        g.diagonal(dim1=-2, dim2=-1).zero_()
        means = g.sum(-2) / (n - 2)
        means -= means.sum(-1, keepdim=True) / (2 * (n - 1))
        g -= means[..., :, None]
        g -= means[..., None, :]
        g.diagonal(dim1=-2, dim2=-1).zero_()
    else:
        means = g.mean(-2)
        means -= means.mean(-1, keepdim=True) / 2
        g -= means[..., :, None]
        g -= means[..., None, :]
    return g


def _gram_pair(gram_x: Array, gram_y: Array, debiased: bool) -> tuple[torch.Tensor, torch.Tensor]:
    kx = _as_tensor(gram_x, torch.float64)
    ky = _as_tensor(gram_y, torch.float64)
    for name, k in (("gram_x", kx), ("gram_y", ky)):
        if k.dim() != 2 or k.shape[0] != k.shape[1]:
            raise ValueError(f"{name} must be (n, n), got {tuple(k.shape)}")
        if not torch.allclose(k, k.T):
            raise ValueError(f"{name} must be symmetric")
    if kx.shape != ky.shape:
        raise ValueError(
            f"Gram matrices of different sizes: {tuple(kx.shape)} and {tuple(ky.shape)}"
        )
    _check_count(kx.shape[0], debiased)
    return kx, ky


def _check_self_hsic(h_self: torch.Tensor, raw: torch.Tensor, n: int, side: str) -> torch.Tensor:
    """h_self: (L,) centred self inner products; raw: (L,) uncentred ones."""
    for i, (h, r) in enumerate(zip(h_self.tolist(), raw.tolist(), strict=True)):
        if abs(h) <= _CONSTANT_RTOL * r:
            raise ValueError(_constant_message(f"{side}[{i}]", n))
        if h < 0:
            raise ValueError(_negative_message(f"{side}[{i}]", n))
    return h_self


def _constant_message(what: str, n: int) -> str:
    return (
        f"{what} is constant over the {n} examples (its centred Gram matrix is 0), "
        "so CKA is undefined (0/0)"
    )


def _negative_message(what: str, n: int) -> str:
    return (
        f"the debiased HSIC of {what} with itself is <= 0 with {n} examples; "
        "use more examples or the biased estimator"
    )
