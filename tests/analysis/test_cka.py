"""CKA: agreement with Kornblith et al.'s reference code, and the properties CKA must have."""

from __future__ import annotations

import numpy as np
import pytest
import torch

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

# ---------------------------------------------------------------------------
# NumPy port of the reference functions of Kornblith, Norouzi, Lee & Hinton (2019),
# google-research/representation_similarity (Colab "CKA"), kept line for line.
# ---------------------------------------------------------------------------


def ref_gram_linear(x):
    return x.dot(x.T)


def ref_gram_rbf(x, threshold=1.0):
    dot_products = x.dot(x.T)
    sq_norms = np.diag(dot_products)
    sq_distances = -2 * dot_products + sq_norms[:, None] + sq_norms[None, :]
    sq_median_distance = np.median(sq_distances)
    return np.exp(-sq_distances / (2 * threshold**2 * sq_median_distance))


def ref_center_gram(gram, unbiased=False):
    if not np.allclose(gram, gram.T):
        raise ValueError("Input must be a symmetric matrix.")
    gram = gram.copy()
    if unbiased:
        # U-centring of Szekely & Rizzo (2014).
        n = gram.shape[0]
        np.fill_diagonal(gram, 0)
        means = np.sum(gram, 0, dtype=np.float64) / (n - 2)
        means -= np.sum(means) / (2 * (n - 1))
        gram -= means[:, None]
        gram -= means[None, :]
        np.fill_diagonal(gram, 0)
    else:
        means = np.mean(gram, 0, dtype=np.float64)
        means -= np.mean(means) / 2
        gram -= means[:, None]
        gram -= means[None, :]
    return gram


def ref_cka(gram_x, gram_y, debiased=False):
    gram_x = ref_center_gram(gram_x, unbiased=debiased)
    gram_y = ref_center_gram(gram_y, unbiased=debiased)
    scaled_hsic = gram_x.ravel().dot(gram_y.ravel())
    normalization_x = np.linalg.norm(gram_x)
    normalization_y = np.linalg.norm(gram_y)
    return scaled_hsic / (normalization_x * normalization_y)


def ref_debiased_dot_product_similarity_helper(
    xty, sum_squared_rows_x, sum_squared_rows_y, squared_norm_x, squared_norm_y, n
):
    return (
        xty
        - n / (n - 2.0) * sum_squared_rows_x.dot(sum_squared_rows_y)
        + squared_norm_x * squared_norm_y / ((n - 1) * (n - 2))
    )


def ref_feature_space_linear_cka(features_x, features_y, debiased=False):
    features_x = features_x - np.mean(features_x, 0, keepdims=True)
    features_y = features_y - np.mean(features_y, 0, keepdims=True)
    dot_product_similarity = np.linalg.norm(features_x.T.dot(features_y)) ** 2
    normalization_x = np.linalg.norm(features_x.T.dot(features_x))
    normalization_y = np.linalg.norm(features_y.T.dot(features_y))
    if debiased:
        n = features_x.shape[0]
        sum_squared_rows_x = np.einsum("ij,ij->i", features_x, features_x)
        sum_squared_rows_y = np.einsum("ij,ij->i", features_y, features_y)
        squared_norm_x = np.sum(sum_squared_rows_x)
        squared_norm_y = np.sum(sum_squared_rows_y)
        dot_product_similarity = ref_debiased_dot_product_similarity_helper(
            dot_product_similarity,
            sum_squared_rows_x,
            sum_squared_rows_y,
            squared_norm_x,
            squared_norm_y,
            n,
        )
        normalization_x = np.sqrt(
            ref_debiased_dot_product_similarity_helper(
                normalization_x**2,
                sum_squared_rows_x,
                sum_squared_rows_x,
                squared_norm_x,
                squared_norm_x,
                n,
            )
        )
        normalization_y = np.sqrt(
            ref_debiased_dot_product_similarity_helper(
                normalization_y**2,
                sum_squared_rows_y,
                sum_squared_rows_y,
                squared_norm_y,
                squared_norm_y,
                n,
            )
        )
    return dot_product_similarity / (normalization_x * normalization_y)


def ref_hsic0(k, l_):
    """Gretton et al. (2005): tr(K H L H) / (n-1)^2."""
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return np.trace(k @ h @ l_ @ h) / (n - 1) ** 2


def ref_hsic1(k, l_):
    """Song et al. (2012), eq. 5, written out as published."""
    n = k.shape[0]
    kt, lt = k.copy(), l_.copy()
    np.fill_diagonal(kt, 0)
    np.fill_diagonal(lt, 0)
    one = np.ones(n)
    return (
        np.trace(kt @ lt)
        + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
        - 2 / (n - 2) * one @ kt @ lt @ one
    ) / (n * (n - 3))


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------


def related(rng, n, dx, dy, offset=0.0):
    """X (n, dx) and a noisy linear image Y (n, dy), columns of unequal scale and mean."""
    x = rng.normal(size=(n, dx)) * rng.uniform(0.5, 3, size=dx) + offset
    y = (
        np.tanh(x @ rng.normal(size=(dx, dy)) / np.sqrt(dx))
        + 0.5 * rng.normal(size=(n, dy))
        + offset
    )
    return x, y


SHAPES = [(40, 10, 25), (25, 60, 8), (100, 3, 3)]  # n > d, n < d, d tiny


# ---------------------------------------------------------------------------
# agreement with the reference
# ---------------------------------------------------------------------------


def test_reference_port_is_self_consistent():
    # Gram and feature-space forms, and Song's HSIC_1 vs the U-centring: a typo in
    # the port would break one of these.
    x, y = related(np.random.default_rng(0), 30, 7, 12)
    kx, ky = ref_gram_linear(x), ref_gram_linear(y)
    for debiased in (False, True):
        assert ref_cka(kx, ky, debiased) == pytest.approx(
            ref_feature_space_linear_cka(x, y, debiased), abs=1e-10
        )
    uk, ul = ref_center_gram(kx, True), ref_center_gram(ky, True)
    assert ref_hsic1(kx, ky) == pytest.approx(uk.ravel() @ ul.ravel() / (30 * 27), rel=1e-10)


@pytest.mark.parametrize("unbiased", [False, True])
def test_center_gram_matches_reference(unbiased):
    x, _ = related(np.random.default_rng(1), 20, 5, 5, offset=2.0)
    k = ref_gram_rbf(x)
    np.testing.assert_allclose(
        center_gram(k, unbiased).numpy(), ref_center_gram(k, unbiased), atol=1e-12
    )


def test_hsic_matches_gretton_and_song():
    x, y = related(np.random.default_rng(2), 35, 6, 9, offset=1.0)
    kx, ky = ref_gram_linear(x), ref_gram_rbf(y)
    assert hsic(kx, ky, debiased=False) == pytest.approx(ref_hsic0(kx, ky), rel=1e-9)
    assert hsic(kx, ky, debiased=True) == pytest.approx(ref_hsic1(kx, ky), rel=1e-9)


@pytest.mark.parametrize("n,dx,dy", SHAPES)
@pytest.mark.parametrize("debiased", [False, True])
def test_linear_cka_matches_reference(n, dx, dy, debiased):
    x, y = related(np.random.default_rng(n + dx), n, dx, dy, offset=5.0)
    expected = ref_feature_space_linear_cka(x, y, debiased)
    assert linear_cka(x, y, debiased) == pytest.approx(expected, abs=1e-6)
    assert cka(gram_linear(x), gram_linear(y), debiased) == pytest.approx(expected, abs=1e-6)
    assert linear_cka(torch.from_numpy(x), torch.from_numpy(y), debiased) == pytest.approx(
        expected, abs=1e-6
    )


@pytest.mark.parametrize("n,dx,dy", SHAPES)
@pytest.mark.parametrize("threshold", [0.5, 1.0])
@pytest.mark.parametrize("debiased", [False, True])
def test_rbf_cka_matches_reference(n, dx, dy, threshold, debiased):
    x, y = related(np.random.default_rng(n * dy), n, dx, dy, offset=1.0)
    np.testing.assert_allclose(
        gram_rbf(x, threshold).numpy(), ref_gram_rbf(x, threshold), atol=1e-9
    )
    expected = ref_cka(ref_gram_rbf(x, threshold), ref_gram_rbf(y, threshold), debiased)
    assert rbf_cka(x, y, threshold, debiased) == pytest.approx(expected, abs=1e-6)


# ---------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_of_a_representation_with_itself_is_one(debiased):
    x, _ = related(np.random.default_rng(3), 50, 20, 1)
    assert linear_cka(x, x, debiased) == pytest.approx(1.0, abs=1e-9)
    assert rbf_cka(x, x, debiased=debiased) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("debiased", [False, True])
def test_linear_cka_invariant_to_orthogonal_transform_and_isotropic_scaling(debiased):
    rng = np.random.default_rng(4)
    x, y = related(rng, 60, 12, 15, offset=1.0)
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    base = linear_cka(x, y, debiased)
    assert linear_cka(7.3 * x @ q, y, debiased) == pytest.approx(base, abs=1e-9)
    assert linear_cka(x, 0.01 * y, debiased) == pytest.approx(base, abs=1e-9)
    assert linear_cka(x, 3.0 * x @ q, debiased) == pytest.approx(1.0, abs=1e-9)


def test_linear_cka_not_invariant_to_invertible_linear_transform():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 10))
    q1, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    q2, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    a = q1 @ np.diag(np.logspace(-2, 2, 10)) @ q2  # invertible, condition number 1e4
    assert linear_cka(x, x @ a) < 0.9


def test_debiased_cka_of_independent_inputs_is_near_zero_biased_is_not():
    rng = np.random.default_rng(6)
    n, d = 300, 150
    x, y = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    assert linear_cka(x, y, debiased=False) > 0.2  # ~ d / (n + d) for the biased estimator
    assert abs(linear_cka(x, y, debiased=True)) < 0.05


def test_every_estimator_defaults_to_debiased():
    # The analysis stage reports debiased CKA by default; the library must agree.
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(300, 150)), rng.normal(size=(300, 150))
    acc = LinearCKAAccumulator(1, 1)
    acc.update([x], [y])
    debiased = linear_cka(x, y, debiased=True)
    assert abs(debiased) < 0.05
    assert linear_cka(x, y) == debiased
    # Streamed sums and the direct formula are two float64 paths to the same value.
    assert acc.compute()[0, 0] == pytest.approx(debiased, abs=1e-12)
    assert acc.compute()[0, 0] == acc.compute(debiased=True)[0, 0]
    kx, ky = gram_linear(x), gram_linear(y)
    assert cka(kx, ky) == pytest.approx(debiased, abs=1e-9)
    assert hsic(kx, ky) == hsic(kx, ky, debiased=True)
    assert abs(rbf_cka(x, y)) < 0.05 < rbf_cka(x, y, debiased=False)


# ---------------------------------------------------------------------------
# accumulators
# ---------------------------------------------------------------------------


def layers(rng, n, dims, offset=0.0):
    """Correlated 'layers': a shared latent seen through a different map per layer."""
    z = rng.normal(size=(n, 8))
    return [
        np.tanh(z @ rng.normal(size=(8, d))) + 0.3 * rng.normal(size=(n, d)) + offset for d in dims
    ]


@pytest.mark.parametrize("debiased", [False, True])
def test_streaming_linear_cka_equals_full_data_for_unequal_chunks(debiased):
    rng = np.random.default_rng(7)
    xs, ys = layers(rng, 201, [5, 9, 16], offset=40.0), layers(rng, 201, [7, 4], offset=-3.0)
    acc = LinearCKAAccumulator(3, 2)
    bounds = [0, 7, 57, 60, 200, 201]  # chunks of 7, 50, 3, 140, 1 rows
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        acc.update([h[lo:hi] for h in xs], [torch.from_numpy(h[lo:hi]) for h in ys])
    assert acc.n_examples == 201
    expected = np.array([[ref_feature_space_linear_cka(x, y, debiased) for y in ys] for x in xs])
    np.testing.assert_allclose(acc.compute(debiased), expected, atol=1e-9)


@pytest.mark.parametrize("debiased", [False, True])
def test_streaming_linear_cka_survives_a_large_mean(debiased):
    # Sums of uncentred products would cancel catastrophically at mean/std = 1e4.
    rng = np.random.default_rng(16)
    x, y = related(rng, 500, 6, 4)
    acc = LinearCKAAccumulator(1, 1)
    for lo in range(0, 500, 100):
        acc.update([x[lo : lo + 100] + 1e4], [y[lo : lo + 100] - 1e4])
    assert acc.compute(debiased)[0, 0] == pytest.approx(
        ref_feature_space_linear_cka(x, y, debiased), abs=1e-6
    )


@pytest.mark.parametrize("debiased", [False, True])
def test_streaming_linear_cka_float32_with_an_outlier_first_row(debiased):
    # The sums are taken about a constant shift, and the final centring cancels
    # them down to the covariance: a shift set by a first row 100 sd from the mean
    # left a float32 error of ~3e-4 at this size; the exact value is the reference.
    rng = np.random.default_rng(18)
    n, d = 50_000, 32
    z = rng.normal(size=(n, d))
    x = z + 1.2 * rng.normal(size=(n, d)) + 1.0
    y = z + 1.2 * rng.normal(size=(n, d)) - 2.0
    x[0] += 100 * rng.choice([-1, 1], size=d)
    y[0] += 100 * rng.choice([-1, 1], size=d)
    x, y = x.astype(np.float32), y.astype(np.float32)
    acc = LinearCKAAccumulator(1, 1)
    for lo in range(0, n, 2000):
        acc.update([x[lo : lo + 2000]], [y[lo : lo + 2000]])
    expected = ref_feature_space_linear_cka(np.float64(x), np.float64(y), debiased)
    assert acc.compute(debiased)[0, 0] == pytest.approx(expected, abs=1e-6)


def test_streaming_linear_cka_float32_inputs_stay_close():
    rng = np.random.default_rng(8)
    xs, ys = layers(rng, 3000, [32, 32], offset=10.0), layers(rng, 3000, [32], offset=10.0)
    acc = LinearCKAAccumulator(2, 1)
    for lo in range(0, 3000, 500):
        acc.update(
            [np.float32(h[lo : lo + 500]) for h in xs], [np.float32(h[lo : lo + 500]) for h in ys]
        )
    for debiased in (False, True):
        expected = np.array([[ref_feature_space_linear_cka(x, ys[0], debiased)] for x in xs])
        np.testing.assert_allclose(acc.compute(debiased), expected, atol=1e-5)


def padded_batch(rng, batch=6, frames=25, dims=(8, 12)):
    lengths = rng.integers(3, frames + 1, size=batch)
    lengths[0] = frames
    mask = torch.arange(frames)[None, :] < torch.from_numpy(lengths)[:, None]
    hs = [torch.from_numpy(rng.normal(size=(batch, frames, d))) for d in dims]
    return hs, mask


def test_padding_mask_excludes_padded_frames():
    def make():
        return LinearCKAAccumulator(2, 1)

    rng = np.random.default_rng(11)
    xs, mask = padded_batch(rng)
    ys = [
        xs[0] @ torch.from_numpy(rng.normal(size=(8, 5)))
        + 0.1 * torch.randn(6, 25, 5, dtype=torch.float64)
    ]
    clean, dirty, rows = make(), make(), make()
    clean.update(xs, ys, mask=mask)
    poison = [torch.where(mask[..., None], h, torch.full_like(h, 1e6)) for h in xs]
    poison[1] = torch.where(mask[..., None], poison[1], torch.full_like(poison[1], float("nan")))
    dirty.update(poison, [torch.where(mask[..., None], ys[0], -ys[0] * 1e3)], mask=mask)
    rows.update([h[mask] for h in xs], [ys[0][mask]])
    np.testing.assert_array_equal(clean.compute(), dirty.compute())
    np.testing.assert_allclose(clean.compute(), rows.compute(), rtol=1e-12)
    with pytest.raises(ValueError, match=r"xs\[1\] has non-finite"):
        make().update(poison, [ys[0]])  # no mask: the NaN padding would be used


def test_utterance_level_pools_each_model_with_its_own_mask():
    rng = np.random.default_rng(12)
    xs, mask_x = padded_batch(rng, batch=10, frames=30, dims=(8, 12))
    ys, mask_y = padded_batch(rng, batch=10, frames=11, dims=(5,))  # e.g. decoder tokens
    acc = LinearCKAAccumulator(2, 1, level="utterance")
    acc.update(xs, ys, mask=mask_x, mask_y=mask_y)
    pooled_x = [np.stack([h[i, mask_x[i]].numpy().mean(0) for i in range(10)]) for h in xs]
    pooled_y = np.stack([ys[0][i, mask_y[i]].numpy().mean(0) for i in range(10)])
    np.testing.assert_allclose(pool_utterances(xs[1], mask_x).numpy(), pooled_x[1], rtol=1e-12)
    expected = [[ref_feature_space_linear_cka(p, pooled_y)] for p in pooled_x]
    np.testing.assert_allclose(acc.compute(debiased=False), expected, atol=1e-9)


def test_frame_level_refuses_unaligned_frames_and_non_boolean_masks():
    rng = np.random.default_rng(13)
    xs, mask = padded_batch(rng, frames=25)
    ys, _ = padded_batch(rng, frames=11, dims=(5,))
    with pytest.raises(ValueError, match="aligned"):
        LinearCKAAccumulator(2, 1).update(xs, ys, mask=mask)
    with pytest.raises(TypeError, match="boolean"):
        LinearCKAAccumulator(2, 1).update(xs, [xs[0]], mask=mask.long())


def test_pool_utterances_refuses_utterance_without_valid_frames():
    h = torch.randn(3, 4, 2)
    mask = torch.tensor([[True, True, False, False], [False] * 4, [True] * 4])
    with pytest.raises(ValueError, match=r"\[1\]"):
        pool_utterances(h, mask)


# ---------------------------------------------------------------------------
# degenerate inputs: errors, never NaN
# ---------------------------------------------------------------------------


def test_debiased_with_fewer_than_four_examples_raises():
    x, y = related(np.random.default_rng(14), 3, 4, 5)
    for call in (
        lambda: linear_cka(x, y, debiased=True),
        lambda: cka(gram_linear(x), gram_linear(y), debiased=True),
        lambda: rbf_cka(x, y, debiased=True),
    ):
        with pytest.raises(ValueError, match="at least 4 examples, got 3"):
            call()
    acc = LinearCKAAccumulator(1, 1)
    acc.update([x], [y])
    with pytest.raises(ValueError, match="got 3"):
        acc.compute(debiased=True)
    assert np.isfinite(acc.compute(debiased=False)).all()  # the biased one is defined


def test_constant_representation_raises():
    rng = np.random.default_rng(15)
    y = rng.normal(size=(20, 4))
    const = np.full((20, 6), 3.7)
    with pytest.raises(ValueError, match="constant"):
        linear_cka(const, y)
    with pytest.raises(ValueError, match="constant"):
        linear_cka(y, np.zeros((20, 3)), debiased=True)
    with pytest.raises(ValueError, match="constant"):
        cka(gram_linear(const), gram_linear(y))
    with pytest.raises(ValueError, match="bandwidth"):
        rbf_cka(const, y)
    acc = LinearCKAAccumulator(2, 1)
    acc.update([y, const], [y])
    with pytest.raises(ValueError, match=r"xs\[1\] is constant"):
        acc.compute()
