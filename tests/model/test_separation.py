"""Separation penalties between the surface and meaning encoder outputs:
values on constructed inputs, padding, gradients, training, config errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dualasr.analysis.cka import cka, gram_linear, hsic
from dualasr.config import ConfigError, load_config, model_config
from dualasr.model import ModelConfig, SeparationConfig, build_model
from dualasr.model.similarity import separation_penalty

KINDS = ["orthogonality", "cka"]


def rows(seed: int, n: int, d: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def padded(x: torch.Tensor, y: torch.Tensor, lens=(17, 9, 14), fill: float = 0.0):
    """Split rows (n, d) into a padded batch (3, max(lens), d) and its mask; padded
    frames hold ``fill``."""
    assert sum(lens) == x.shape[0]
    b, t = len(lens), max(lens)
    mask = torch.arange(t)[None] < torch.tensor(lens)[:, None]
    hx = torch.full((b, t, x.shape[1]), fill, dtype=x.dtype)
    hy = torch.full((b, t, y.shape[1]), fill, dtype=y.dtype)
    hx[mask], hy[mask] = x, y
    return hx, hy, mask


def penalty_of_rows(kind: str, x: torch.Tensor, y: torch.Tensor) -> float:
    return separation_penalty(kind, *padded(x, y)).item()


def orthogonal_pair(n: int = 40, d: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """X and Y whose centred columns are mutually orthogonal (disjoint column
    spaces of one QR basis of centred noise), mixed within each space."""
    a = rows(1, n, 2 * d)
    q, _ = torch.linalg.qr(a - a.mean(0))  # centred orthonormal columns
    return q[:, :d] @ rows(2, d, d) + 3.0, q[:, d:] @ rows(3, d, 5) - 1.0


def test_orthogonal_features_give_zero_orthogonality_penalty():
    x, y = orthogonal_pair()
    assert penalty_of_rows("orthogonality", x, y) == pytest.approx(0.0, abs=1e-12)
    # Not a zero from the construction alone: mixing the two spaces is penalised.
    assert penalty_of_rows("orthogonality", x, y + 0.5 * x[:, :1]) > 1e-3


def test_cka_penalty_of_orthogonal_features_is_the_debiased_estimate():
    # Debiased CKA of cross-orthogonal features is not exactly 0 (the row-norm
    # correction), but near it; biased CKA is exactly 0 for them.
    x, y = orthogonal_pair()
    value = penalty_of_rows("cka", x, y)
    assert value == pytest.approx(cka(gram_linear(x), gram_linear(y)), abs=1e-10)
    assert abs(value) < 0.1 and cka(gram_linear(x), gram_linear(y), debiased=False) == pytest.approx(0, abs=1e-12)


def test_identical_features_give_one_cka_and_the_largest_orthogonality():
    x = rows(4, 40, 6)
    assert penalty_of_rows("cka", x, 2.0 * x) == pytest.approx(1.0, abs=1e-12)
    # Orthogonality of X with itself: sum s^4 / (sum s^2)^2 over singular values of X_c.
    s = torch.linalg.svdvals(x - x.mean(0))
    assert penalty_of_rows("orthogonality", x, x) == pytest.approx(
        float(s.pow(4).sum() / s.square().sum() ** 2), abs=1e-12
    )
    # Its maximum, 1, is reached by identical rank-1 features (up to scale).
    v = rows(5, 40, 1) @ rows(6, 1, 6)
    assert penalty_of_rows("orthogonality", v, -3.0 * v) == pytest.approx(1.0, abs=1e-12)


def test_random_features_match_the_analysis_and_a_hand_computation():
    x, y = rows(7, 40, 6), rows(8, 40, 5) + 0.3 * rows(7, 40, 6)[:, :5]
    # CKA: the analysis's Gram-space debiased CKA (Kornblith et al.'s reference
    # formulas, U-centring), a different computation from the feature-space one.
    expected = cka(gram_linear(x), gram_linear(y))
    assert penalty_of_rows("cka", x, y) == pytest.approx(expected, abs=1e-10)
    assert 0.05 < expected < 0.95  # a value that tells the estimators apart
    # Orthogonality by hand in NumPy: centre, scale to unit Frobenius norm, ||Yn^T Xn||_F^2.
    xn, yn = x.numpy() - x.numpy().mean(0), y.numpy() - y.numpy().mean(0)
    xn, yn = xn / np.linalg.norm(xn), yn / np.linalg.norm(yn)
    hand = float(np.sum((yn.T @ xn) ** 2))
    assert penalty_of_rows("orthogonality", x, y) == pytest.approx(hand, abs=1e-12)
    # ... which is the biased linear-CKA numerator: (n-1)^2 HSIC_0 of the scaled features.
    n = x.shape[0]
    assert hand == pytest.approx(hsic(gram_linear(xn), gram_linear(yn), debiased=False) * (n - 1) ** 2)


@pytest.mark.parametrize("kind", KINDS)
def test_padded_frames_do_not_change_the_penalty(kind):
    x, y = rows(9, 40, 6), rows(10, 40, 6) + 0.5 * rows(9, 40, 6)
    hx, hy, mask = padded(x, y)
    clean = separation_penalty(kind, hx, hy, mask).item()
    noisy_x, noisy_y = hx.clone(), hy.clone()
    noisy_x[~mask] = 1e3 * torch.randn(int((~mask).sum()), 6, dtype=torch.float64)
    noisy_y[~mask] = -7.0
    assert separation_penalty(kind, noisy_x, noisy_y, mask).item() == pytest.approx(clean, abs=1e-12)
    everything = torch.ones_like(mask)
    assert abs(separation_penalty(kind, noisy_x, noisy_y, everything).item() - clean) > 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_match_finite_differences(kind):
    x, y = rows(11, 12, 3), rows(12, 12, 4) + 0.4 * rows(11, 12, 4)
    hx, hy, mask = padded(x, y, lens=(5, 3, 4))
    hx.requires_grad_(True)
    hy.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: separation_penalty(kind, a, b, mask), (hx, hy))


@pytest.mark.parametrize("kind", KINDS)
def test_half_precision_inputs_are_computed_in_float32(kind):
    x, y = rows(13, 60, 8), rows(14, 60, 8) + 0.5 * rows(13, 60, 8)
    hx, hy, mask = padded(x, y, lens=(30, 10, 20))
    exact = separation_penalty(kind, hx, hy, mask).item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        p = separation_penalty(kind, hx.bfloat16(), hy.bfloat16(), mask)
    assert p.dtype == torch.float32
    assert p.item() == pytest.approx(exact, abs=0.02)  # bfloat16 input rounding only


# ---------------------------------------------------------------------------
# in the model
# ---------------------------------------------------------------------------


def separated(tiny_config, vocab, kind: str, weight: float):
    torch.manual_seed(0)
    cfg = tiny_config("do", encoder={"task_specific_layers": 1}, separation={"kind": kind, "weight": weight})
    return build_model(cfg, vocab)


@pytest.mark.parametrize("kind", KINDS)
def test_loss_adds_weighted_penalty_and_exposes_it(kind, tiny_config, random_batch, vocab):
    model = separated(tiny_config, vocab, kind, 7.0)
    model.eval()
    feats, lens, targets = random_batch()
    t = model.task_losses(feats, lens, targets)
    loss, stats = model(feats, lens, targets)
    p = stats[f"penalty_{kind}"].item()
    assert t.penalty.requires_grad and t.penalty.item() == pytest.approx(7.0 * p, rel=1e-6)
    assert loss.item() == pytest.approx(sum(v.item() for v in t.losses.values()) + 7.0 * p, rel=1e-6)
    assert stats["loss"].item() == pytest.approx(loss.item(), rel=1e-6)
    enc = model.encode(feats, lens)
    direct = separation_penalty(kind, enc.out["surface"], enc.out["meaning"], enc.mask)
    assert p == pytest.approx(direct.item(), rel=1e-6)
    # The penalty reaches both branches (and the shared trunk through them).
    t.penalty.backward()
    for name in ("encoder.branches.surface", "encoder.branches.meaning", "encoder.blocks"):
        grads = [q.grad for n, q in model.named_parameters() if n.startswith(name) and q.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), name


#: The other structures that give each output its own encoder output, and the
#: modules the penalty must reach through them.
OWN_OUTPUTS = {
    "adapters": ({"adapters": {"layers": 1, "dim": 4}}, ("encoder.adapters.surface", "encoder.adapters.meaning")),
    "hierarchy": ({"hierarchy": {"surface_layer": 1, "surface_decoder": True}}, ("encoder.blocks.0", "encoder.blocks.1")),
}


@pytest.mark.parametrize("structure", list(OWN_OUTPUTS))
def test_penalty_with_adapters_or_a_hierarchical_surface_decoder(structure, tiny_config, random_batch, vocab):
    """The penalty compares what each decoder reads: the two adapter streams, or
    block k (surface) against the top (meaning) of a hierarchy."""
    section, reached = OWN_OUTPUTS[structure]
    torch.manual_seed(0)
    model = build_model(tiny_config("do", separation={"kind": "orthogonality", "weight": 3.0}, **section), vocab)
    model.eval()
    feats, lens, targets = random_batch()
    t = model.task_losses(feats, lens, targets)
    enc = model.encode(feats, lens)
    assert enc.out["surface"] is not enc.out["meaning"]
    direct = separation_penalty("orthogonality", enc.out["surface"], enc.out["meaning"], enc.mask)
    assert 0 < direct.item() and t.penalty.item() == pytest.approx(3.0 * direct.item(), rel=1e-6)
    t.penalty.backward()
    for name in reached:
        grads = [q.grad for n, q in model.named_parameters() if n.startswith(name) and q.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), name
    if structure == "hierarchy":  # the surface side is block 1's output: nothing above it shapes it
        model.zero_grad(set_to_none=True)
        model.encode(feats, lens).out["surface"].sum().backward()
        assert all(q.grad is None for n, q in model.named_parameters() if n.startswith("encoder.blocks.1"))


def test_no_separation_leaves_the_loss_and_stats_unchanged(tiny_config, random_batch, vocab):
    torch.manual_seed(0)
    model = build_model(tiny_config("do", encoder={"task_specific_layers": 1}), vocab)
    t = model.task_losses(*random_batch())
    assert t.penalty is None and not any(k.startswith("penalty") for k in t.stats)


def train(model, batch, steps: int = 25):
    feats, lens, targets = batch
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(steps):
        loss, stats = model(feats, lens, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(stats)
    return history


@pytest.mark.parametrize("kind, large", [("orthogonality", 200.0), ("cka", 200.0)])
def test_do_with_a_penalty_trains_and_a_large_weight_lowers_the_penalty(
    kind, large, tiny_config, random_batch, vocab
):
    batch = random_batch(lens=(48, 40))
    key = f"penalty_{kind}"
    small = train(separated(tiny_config, vocab, kind, 1e-3), batch)
    strong = train(separated(tiny_config, vocab, kind, large), batch)
    for run in (small, strong):
        task = [sum(s[f"loss_{o}"] for o in ("surface", "meaning")) for s in run]
        assert task[-1] < 0.5 * task[0]  # the outputs still learn
    assert strong[-1]["loss"] < strong[0]["loss"]
    assert strong[-1][key] < 0.5 * strong[0][key]
    assert strong[-1][key] < small[-1][key]  # the weight, not training alone, lowers P


# ---------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------


def test_config_errors_name_the_key():
    base = {"mode": "do", "encoder": {"layers": 2, "task_specific_layers": 1}}
    ok = ModelConfig(**base, separation={"kind": "cka", "weight": 2.0})
    assert ok.separation == SeparationConfig(kind="cka", weight=2.0)
    assert ModelConfig(**base).separation is None
    bad = [
        ({**base, "mode": "sso", "separation": {"kind": "cka", "weight": 1}}, r"separation needs mode 'do'"),
        ({"mode": "do", "separation": {"kind": "cka", "weight": 1}}, r"separation needs encoder.task_specific_layers >= 1"),
        ({**base, "separation": {"kind": "orth", "weight": 1}}, r"separation.kind\n"),
        ({**base, "separation": {"kind": "cka", "weight": 0}}, r"separation.weight\n"),
        ({**base, "separation": {"kind": "cka"}}, r"separation.weight\n  Field required"),
        ({**base, "separation": {"kind": "cka", "weight": 1, "lam": 1}}, r"separation.lam\n"),
    ]
    for fields, message in bad:
        with pytest.raises(ValueError, match=message):
            ModelConfig(**fields)


def test_variant_config_error_names_file_variant_and_key(tmp_path):
    (tmp_path / "bad.yaml").write_text(
        "study:\n  models: {do_cka: {mode: do, model: {separation: {kind: cka, weight: 1}}}}\n"
    )
    with pytest.raises(ConfigError, match=r"/bad.yaml: study.models.do_cka: separation needs encoder.task_specific_layers"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "ok.yaml").write_text(
        "study:\n  models:\n    do_cka: {mode: do, model: {encoder: {task_specific_layers: 2},"
        " separation: {kind: cka, weight: 10}}}\n"
    )
    assert model_config(load_config(tmp_path / "ok.yaml"), "do_cka").separation.weight == 10


def test_model_refuses_one_shared_encoder_output(tiny_config, random_batch, vocab):
    # The config check covers task-specific blocks; the model checks the tensors
    # themselves, whatever gives (or fails to give) each output its own.
    torch.manual_seed(0)
    model = build_model(tiny_config("do"), vocab)
    model.separation = SeparationConfig(kind="orthogonality", weight=1.0)
    with pytest.raises(ValueError, match="separation: the surface and meaning encoder outputs are one tensor"):
        model(*random_batch())
