import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from dualasr.model import CTC, add_sos_eos, build_model


def brute_force_ctc_nll(log_probs: torch.Tensor, target: list[int]) -> float:
    """-log sum over every frame-level path that collapses to ``target``."""
    t, v = log_probs.shape
    total = 0.0
    for path in itertools.product(range(v), repeat=t):
        collapsed = [s for i, s in enumerate(path) if s != 0 and (i == 0 or s != path[i - 1])]
        if collapsed == target:
            total += math.exp(sum(float(log_probs[i, s]) for i, s in enumerate(path)))
    return -math.log(total)


def test_ctc_loss_equals_brute_force_enumeration():
    torch.manual_seed(0)
    head = CTC(4, 3)
    x = torch.randn(2, 4, 4)  # utterance 2 has 3 valid frames
    lens = torch.tensor([4, 3])
    ys = torch.tensor([[1, 1], [2, -1]])
    ys_lens = torch.tensor([2, 1])
    lp = head.log_probs(x).detach()
    expected = (brute_force_ctc_nll(lp[0], [1, 1]) + brute_force_ctc_nll(lp[1, :3], [2])) / 2
    assert head.loss(x, lens, ys, ys_lens).item() == pytest.approx(expected, rel=1e-5)


def test_add_sos_eos():
    ys = torch.tensor([[3, 4, 5], [6, -1, -1]])
    ys_in, ys_out = add_sos_eos(ys, torch.tensor([3, 1]), 9)
    assert ys_in.tolist() == [[9, 3, 4, 5], [9, 6, 9, 9]]
    assert ys_out.tolist() == [[3, 4, 5, 9], [6, 9, -1, -1]]


def test_attention_loss_equals_manual_label_smoothed_cross_entropy(
    tiny_config, random_batch, vocab
):
    torch.manual_seed(0)
    model = build_model(tiny_config("sso", label_smoothing=0.1), vocab).eval()
    feats, lens, targets = random_batch()
    ys, ys_lens = targets["surface"]
    enc = model.encode(feats, lens)
    loss, acc = model._calc_att_loss(enc.out["surface"], enc.mask, ys, ys_lens, "surface")

    eos, v, eps = model.sos_eos["surface"], vocab["surface"], 0.1
    manual, hits, count = 0.0, 0, 0
    for b in range(ys.size(0)):
        y = ys[b, : ys_lens[b]].tolist()
        logits, _ = model.decoders["surface"](
            torch.tensor([[eos] + y]), enc.out["surface"][b : b + 1], enc.mask[b : b + 1]
        )
        logp = logits[0].log_softmax(-1)
        for i, target in enumerate(y + [eos]):
            manual -= (1 - eps) * logp[i, target] + eps / v * logp[i].sum()
            hits += int(logp[i].argmax() == target)
            count += 1
    assert loss.item() == pytest.approx(manual.item() / ys.size(0), rel=1e-4)
    assert acc == pytest.approx(hits / count)


@pytest.mark.parametrize(
    "mode, keys",
    [
        ("sso", {"loss_ctc_surface", "loss_att_surface", "acc_surface", "loss_surface"}),
        ("mso", {"loss_ctc_meaning", "loss_att_meaning", "acc_meaning", "loss_meaning"}),
        (
            "do",
            {
                "loss_ctc_surface",
                "loss_att_surface",
                "acc_surface",
                "loss_surface",
                "loss_att_meaning",
                "acc_meaning",
                "loss_meaning",
            },
        ),
    ],
)
def test_forward_returns_weighted_loss_and_flat_float_stats(
    mode, keys, tiny_config, random_batch, vocab
):
    torch.manual_seed(0)
    model = build_model(tiny_config(mode), vocab)
    feats, lens, targets = random_batch()
    loss, stats = model(feats, lens, targets)
    assert set(stats) == keys | {"loss"}
    # Detached 0-dim tensors, so the trainer sums them without a host sync per statistic.
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad for v in stats.values())
    stats = {k: v.item() for k, v in stats.items()}
    assert loss.item() == pytest.approx(stats["loss"], rel=1e-5)
    w = model.weights
    expected = sum(
        w.get(f"{k}_{o}", 0.0) * stats.get(f"loss_{k}_{o}", 0.0)
        for o in model.outputs
        for k in ("ctc", "att")
    )
    assert stats["loss"] == pytest.approx(expected, rel=1e-5)


def test_do_has_no_meaning_ctc_head_unless_weighted(tiny_config, vocab):
    assert set(build_model(tiny_config("do"), vocab).ctcs) == {"surface"}
    with_head = build_model(tiny_config("do", weights={"ctc_meaning": 0.1}), vocab)
    assert set(with_head.ctcs) == {"surface", "meaning"}
    with pytest.raises(KeyError, match="meaning"):
        build_model(tiny_config("do"), {"surface": 10})


def test_subsampling_channels_reach_the_frontend(tiny_config, vocab):
    model = build_model(tiny_config("do", subsampling_channels=3), vocab)
    assert model.frontend.subsampling.conv[0].out_channels == 3


def test_task_losses_are_separate_and_reach_shared_features(tiny_config, random_batch, vocab):
    torch.manual_seed(0)
    model = build_model(tiny_config("do"), vocab)
    feats, lens, targets = random_batch()
    t = model.task_losses(feats, lens, targets)
    assert set(t.losses) == {"surface", "meaning"}
    g_s = torch.autograd.grad(t.losses["surface"], t.features, retain_graph=True)[0]
    g_m = torch.autograd.grad(t.losses["meaning"], t.features, retain_graph=True)[0]
    assert g_s.abs().sum() > 0 and g_m.abs().sum() > 0 and not torch.allclose(g_s, g_m)
    # the meaning loss never touches the surface decoder
    grads = torch.autograd.grad(
        t.losses["meaning"], list(model.decoders["surface"].parameters()), allow_unused=True
    )
    assert all(g is None for g in grads)


def test_torchjd_mtl_backward_runs_on_task_losses(tiny_config, random_batch, vocab):
    autojac = pytest.importorskip("torchjd.autojac")
    torch.manual_seed(0)
    model = build_model(tiny_config("do"), vocab)
    feats, lens, targets = random_batch()
    t = model.task_losses(feats, lens, targets)
    autojac.mtl_backward(list(t.losses.values()), features=t.features)
    jac = model.frontend.subsampling.out.weight.jac  # one row per task on shared params
    assert jac.shape[0] == 2
    assert model.decoders["meaning"].out.weight.grad is not None


def test_extra_target_outputs_are_ignored_and_missing_ones_rejected(
    tiny_config, random_batch, vocab
):
    model = build_model(tiny_config("sso"), vocab)
    feats, lens, targets = random_batch()
    model(feats, lens, targets)  # meaning targets present but unused
    with pytest.raises(KeyError, match="surface"):
        model(feats, lens, {"meaning": targets["meaning"]})


def test_padding_does_not_change_the_loss_in_eval(tiny_config, random_batch, vocab):
    torch.manual_seed(0)
    model = build_model(tiny_config("do"), vocab).eval()
    feats, lens, targets = random_batch()
    noisy = feats.clone()
    for i, n in enumerate(lens.tolist()):
        noisy[i, n:] = 1e2
    a, _ = model(feats, lens, targets)
    b, _ = model(noisy, lens, targets)
    assert a.item() == pytest.approx(b.item(), rel=1e-5)


@pytest.mark.parametrize("mode", ["sso", "do"])
def test_loss_decreases_when_overfitting_a_tiny_batch(mode, tiny_config, random_batch, vocab):
    torch.manual_seed(0)
    model = build_model(tiny_config(mode), vocab)
    feats, lens, targets = random_batch(lens=(48, 40))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss, _ = model(feats, lens, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


def test_forward_and_backward_under_autocast(tiny_config, random_batch, vocab):
    torch.manual_seed(0)
    model = build_model(tiny_config("do"), vocab)
    feats, lens, targets = random_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, stats = model(feats, lens, targets)
    assert loss.dtype == torch.float32 and math.isfinite(loss.item())
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_specaugment_makes_training_forward_stochastic(tiny_config, random_batch, vocab):
    model = build_model(tiny_config("sso", specaug={"enabled": True}), vocab)
    feats, lens, targets = random_batch()
    torch.manual_seed(1)
    a, _ = model(feats, lens, targets)
    torch.manual_seed(2)
    b, _ = model(feats, lens, targets)
    model.eval()
    c, _ = model(feats, lens, targets)
    d, _ = model(feats, lens, targets)
    assert a.item() != b.item() and c.item() == d.item()


def test_set_cmvn_changes_the_output_and_is_in_the_state_dict(tiny_config, vocab):
    model = build_model(tiny_config("sso"), vocab)
    model.set_cmvn(torch.full((80,), 2.0), torch.full((80,), 3.0))
    state = model.state_dict()
    assert torch.equal(state["frontend.cmvn.mean"], torch.full((80,), 2.0))
    assert torch.equal(state["frontend.cmvn.std"], torch.full((80,), 3.0))
    assert F.mse_loss(model.frontend.cmvn(torch.full((1, 1, 80), 5.0)), torch.ones(1, 1, 80)) == 0


def edit_distance(a: list[int], b: list[int]) -> int:
    """Plain dynamic-programming Levenshtein distance (the reference for rapidfuzz)."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def test_validation_stats_count_ctc_best_path_edits(tiny_config, random_batch, vocab):
    torch.manual_seed(0)
    model = build_model(tiny_config("do"), vocab).eval()  # CTC on surface only
    feats, lens, targets = random_batch()
    with torch.no_grad():
        _, stats = model(feats, lens, targets)
        enc = model.encode(feats, lens)
        best = model.ctcs["surface"].log_probs(enc.out["surface"]).argmax(-1)
    ys, ys_lens = targets["surface"]
    edits = 0
    for b in range(len(lens)):
        path = best[b, : enc.lens[b]].tolist()
        hyp = [s for i, s in enumerate(path) if s != 0 and (i == 0 or s != path[i - 1])]
        edits += edit_distance(hyp, ys[b, : ys_lens[b]].tolist())
    assert stats["ctc_edits_surface"] == pytest.approx(edits / len(lens))
    assert stats["ctc_ref_surface"] == pytest.approx(ys_lens.sum().item() / len(lens))
    assert "ctc_edits_meaning" not in stats  # no meaning CTC head in the reference DO
    _, train_stats = model.train()(feats, lens, targets)
    assert "ctc_edits_surface" not in train_stats  # validation only
