"""Methods against negative transfer that change the architecture: task-specific
encoder branches, hierarchical outputs (with self-conditioning) and per-output
adapters. Shapes, which layer each head reads, the parameters each adds, that
training lowers the loss and that decoding reads the right layer."""

from __future__ import annotations

import pydantic
import pytest
import torch

from dualasr.decode.search import decode_dual
from dualasr.model import build_model
from tests.torch_fixtures import VOCAB, _random_batch, _tiny_config

#: Variant name -> overrides of the tiny DO config (2 encoder blocks, d=32).
VARIANTS = {
    "branches": {"encoder": {"task_specific_layers": 1}},
    "hierarchy": {"hierarchy": {"surface_layer": 1}},
    "hierarchy_sc": {"hierarchy": {"surface_layer": 1, "surface_decoder": True, "self_condition": True}},
    "adapters": {"adapters": {"layers": 1, "dim": 8}},
}


def model_of(variant: str, seed: int = 0, mode: str = "do", **extra):
    torch.manual_seed(seed)
    return build_model(_tiny_config(mode, **VARIANTS.get(variant, {}), **extra), VOCAB)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------ config


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"hierarchy": {"surface_layer": 2}}, "hierarchy.surface_layer=2 must be in 1..1"),
        ({"hierarchy": {"surface_layer": 0}}, "surface_layer"),
        ({"hierarchy": {"surface_layer": 1, "tap": 1}}, "hierarchy.tap"),
        ({"hierarchy": {"surface_layer": 1}, "weights": {"ctc_surface": 0.0}}, "weights.ctc_surface"),
        ({"hierarchy": {"surface_layer": 1}, "encoder": {"task_specific_layers": 1}}, "task_specific_layers"),
        ({"adapters": {"layers": 3}}, "adapters.layers=3 exceeds encoder.layers=2"),
        ({"adapters": {"layers": 1, "dim": 0}}, "adapters.dim"),
        ({"adapters": {"layers": 1}, "encoder": {"task_specific_layers": 1}}, "adapters with encoder.task_specific_layers"),
        ({"adapters": {"layers": 1}, "hierarchy": {"surface_layer": 1}}, "adapters with hierarchy"),
    ],
)
def test_invalid_method_sections_name_the_key(fields, message):
    with pytest.raises(pydantic.ValidationError) as err:
        _tiny_config("do", **fields)
    text = str(err.value).replace("\n", " ")
    assert message in text or all(part in text for part in message.split("."))


def test_hierarchy_needs_a_surface_output():
    with pytest.raises(pydantic.ValidationError, match="hierarchy needs a surface output"):
        _tiny_config("mso", hierarchy={"surface_layer": 1})
    assert _tiny_config("sso", hierarchy={"surface_layer": 1}).hierarchy.surface_layer == 1


# ------------------------------------------------------------------ shapes and layers


@pytest.mark.parametrize("variant", ["plain", *VARIANTS])
def test_every_variant_gives_per_output_frames_and_losses(variant):
    feats, lens, targets = _random_batch()
    model = model_of(variant).eval()
    enc = model.encode(feats, lens, return_layers=True)
    T = enc.mask.shape[1]
    for o in model.outputs:
        assert enc.out[o].shape == enc.ctc_in[o].shape == (3, T, 32)
    assert all(f.shape == (3, T, 32) for f in enc.shared_features)
    t = model.task_losses(feats, lens, targets)
    assert set(t.losses) == {"surface", "meaning"} and all(v.ndim == 0 for v in t.losses.values())
    assert t.shared_features == [t.features] or variant.startswith("hierarchy")


def test_hierarchy_puts_the_surface_ctc_on_block_k_and_meaning_on_the_top():
    feats, lens, _ = _random_batch()
    enc = model_of("hierarchy").eval().encode(feats, lens, return_layers=True)
    h1, top = enc.layers["meaning"]
    assert torch.equal(enc.ctc_in["surface"], h1) and not torch.allclose(h1, top)
    assert enc.out["surface"] is enc.out["meaning"] is enc.shared  # both decoders read the top
    assert len(enc.layers["surface"]) == 1 and enc.layers["surface"][0] is h1  # the stack feeding the surface CTC
    assert enc.shared_features[0] is enc.ctc_in["surface"] and enc.shared_features[1] is top
    # With surface_decoder the surface decoder reads block k as well.
    enc = model_of("hierarchy_sc").eval().encode(feats, lens)
    assert enc.out["surface"] is enc.ctc_in["surface"]


@pytest.mark.parametrize("variant", ["hierarchy", "hierarchy_sc"])
def test_hierarchy_shared_features_carry_each_loss_to_the_shared_blocks_exactly_once(variant):
    """What ``torchjd.autojac.mtl_backward(features=...)`` assumes: the gradient of
    each loss on a bottom-block parameter is the sum, over the features f, of
    ``(dL/df) (df/dtheta)``. Heads reading ``h_k`` itself (not their own view)
    would count the path through the upper blocks twice."""
    feats, lens, targets = _random_batch()
    model = model_of(variant).train()
    t = model.task_losses(feats, lens, targets)
    theta = model.encoder.blocks[0].ff.w1.weight  # below block k: reached through both features
    for o, loss in t.losses.items():
        direct = torch.autograd.grad(loss, theta, retain_graph=True)[0]
        dfs = torch.autograd.grad(loss, t.shared_features, retain_graph=True, allow_unused=True)
        via = sum(
            torch.autograd.grad(f, theta, grad_outputs=g, retain_graph=True)[0]
            for f, g in zip(t.shared_features, dfs, strict=True)
            if g is not None
        )
        torch.testing.assert_close(via, direct, rtol=1e-4, atol=1e-6, msg=o)


def test_self_conditioning_changes_only_the_blocks_above_k():
    """Zeroing the conditioning projection leaves block k as it was and changes
    block k+1's input, hence its output; zeroed, it is the plain hierarchy."""
    feats, lens, _ = _random_batch()
    model = model_of("hierarchy_sc").eval()
    with torch.no_grad():
        model.encoder.conditioning.bias.fill_(0.5)  # make the conditioning term visible
        before = model.encode(feats, lens, return_layers=True).layers["meaning"]
        model.encoder.conditioning.weight.zero_()
        model.encoder.conditioning.bias.zero_()
        after = model.encode(feats, lens, return_layers=True).layers["meaning"]
        plain = model_of("hierarchy").eval()
        missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
        assert not missing and unexpected == ["encoder.conditioning.weight", "encoder.conditioning.bias"]
        unconditioned = plain.encode(feats, lens, return_layers=True).layers["meaning"]
    assert torch.equal(before[0], after[0])
    assert not torch.allclose(before[1], after[1], atol=1e-4)
    torch.testing.assert_close(after[1], unconditioned[1])


def test_adapters_start_as_the_identity_and_get_gradients():
    feats, lens, targets = _random_batch()
    model = model_of("adapters")
    plain = model_of("plain")
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    assert not missing and all(k.startswith("encoder.adapters.") for k in unexpected) and unexpected
    model.eval(), plain.eval()
    with torch.no_grad():
        a, p = model.encode(feats, lens), plain.encode(feats, lens)
        for o in model.outputs:
            torch.testing.assert_close(a.out[o], p.out[o])
        torch.testing.assert_close(model(feats, lens, targets)[0], plain(feats, lens, targets)[0])
    # The up-projections get gradients at once; the down-projections once W_up != 0.
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(2):
        opt.zero_grad()
        model(feats, lens, targets)[0].backward()
        for o in model.outputs:
            adapter = model.encoder.adapters[o][0]
            assert adapter.up.weight.grad.abs().sum() > 0
            assert (adapter.down.weight.grad.abs().sum() > 0) == (step > 0)
        opt.step()
    enc = model.eval().encode(feats, lens, return_layers=True)
    assert torch.equal(enc.layers["surface"][0], enc.layers["meaning"][0])  # shared block below the adapters
    assert not torch.allclose(enc.layers["surface"][1], enc.layers["meaning"][1])
    assert enc.shared is enc.layers["surface"][0]  # the last input both outputs share


def test_parameters_each_method_adds(capsys):
    """Adapters: ``layers * outputs * (2 d dim + dim + d)``; a hierarchy adds
    none, self-conditioning one ``V_surface -> d`` projection; branches one
    block per output per task-specific layer (minus the shared copy)."""
    d, plain = 32, n_params(model_of("plain"))
    block = n_params(model_of("plain").encoder.blocks[0])
    added = {v: n_params(model_of(v)) - plain for v in VARIANTS}
    with capsys.disabled():
        print("\n[tiny DO] extra parameters: " + ", ".join(f"{v} {n:+,}" for v, n in added.items()))
    assert added["branches"] == block  # two copies of the top block instead of one
    assert added["hierarchy"] == 0
    assert added["hierarchy_sc"] == VOCAB["surface"] * d + d
    assert added["adapters"] == 1 * 2 * (2 * d * 8 + 8 + d)


# ------------------------------------------------------------------ training and decoding


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_loss_falls_on_a_tiny_batch(variant):
    feats, lens, targets = _random_batch()
    model = model_of(variant).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss, _ = model(feats, lens, targets)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_decode_dual_runs_on_every_variant(variant):
    feats, lens, _ = _random_batch()
    hyps = decode_dual(model_of(variant).eval(), feats, lens, beam=2, ctc_weight=0.3)
    assert set(hyps) == {"surface", "meaning"} and all(len(h) == 3 for h in hyps.values())


def test_decoding_reads_the_surface_ctc_from_block_k():
    """CTC-only surface decoding of a hierarchy depends on blocks 1..k alone:
    changing the top block leaves it unchanged and changes the meaning output."""
    feats, lens, _ = _random_batch()
    model = model_of("hierarchy").eval()
    with torch.no_grad():
        model.ctcs["surface"].proj.bias[3] += 4.0  # some non-blank tokens to decode
    first = decode_dual(model, feats, lens, beam=2, ctc_weight={"surface": 1.0})
    with torch.no_grad():
        for p in model.encoder.blocks[1].parameters():
            p.add_(torch.randn_like(p))
    second = decode_dual(model, feats, lens, beam=2, ctc_weight={"surface": 1.0})
    assert any(h.tokens for h in first["surface"])
    assert [h.tokens for h in first["surface"]] == [h.tokens for h in second["surface"]]
    assert [h.score for h in first["meaning"]] != [h.score for h in second["meaning"]]
