"""train.mtl: per-output gradients of the shared encoder against
``torch.autograd.grad`` by hand, aggregation and weighting steps that train,
and their configuration errors."""

from __future__ import annotations

import pytest
import torch
from torchjd.autojac import mtl_backward

from dualasr.config import Config, ConfigError, MTLConfig, train_config
from dualasr.model import build_model
from dualasr.train.mtl import AGGREGATORS, FAMO
from tests.torch_fixtures import VOCAB, _random_batch, _tiny_config
from tests.train.mtl_fixtures import as_batch, tiny_step


def tiny_model(**encoder) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(_tiny_config("do", encoder=encoder), VOCAB).double()


def double_batch(seed: int = 0):
    feats, lens, targets = _random_batch(seed)
    return feats.double(), lens, targets


@pytest.mark.parametrize("task_specific_layers", [0, 1])
def test_per_output_gradients_equal_autograd_by_hand(task_specific_layers):
    model = tiny_model(task_specific_layers=task_specific_layers)
    batch = double_batch()
    t = model.task_losses(*batch)
    expected = {o: torch.autograd.grad(t.losses[o], list(model.parameters()), retain_graph=True, allow_unused=True)
                for o in model.outputs}  # fmt: skip
    mtl_backward([t.losses[o] for o in model.outputs], features=[t.features])
    shared = task = 0
    for i, (name, p) in enumerate(model.named_parameters()):
        by_hand = [expected[o][i] for o in model.outputs]
        if hasattr(p, "jac"):  # shared: one row per output, in model.outputs order
            shared += 1
            for row, g in zip(p.jac, by_hand, strict=True):
                torch.testing.assert_close(row, g, rtol=1e-9, atol=1e-12, msg=name)
        elif p.grad is not None:  # task-specific: its own output's gradient only
            task += 1
            owners = [g for g in by_hand if g is not None]
            assert len(owners) == 1, name
            torch.testing.assert_close(p.grad, owners[0], rtol=1e-9, atol=1e-12, msg=name)
    assert any(name.startswith("encoder.") and hasattr(p, "jac") for name, p in model.named_parameters())
    assert not any(name.startswith("decoders.") and hasattr(p, "jac") for name, p in model.named_parameters())
    # The encoder's task-specific top blocks belong to their output, not to the shared Jacobian.
    branch = [p for n, p in model.named_parameters() if n.startswith("encoder.") and not hasattr(p, "jac")]
    assert bool(branch) == bool(task_specific_layers)
    assert shared > 0 and task > 0


@pytest.mark.parametrize("aggregator", ["sum", "mean"])
def test_sum_and_mean_aggregation_equal_the_plain_summed_backward(aggregator):
    feats, lens, targets = double_batch()
    plain, aggregated = tiny_model(), tiny_model()
    loss, _ = plain(feats, lens, targets)
    loss.backward()
    step = tiny_step(aggregated, {"aggregator": aggregator})
    step.backward(step.forward(feats, lens, targets)[0])
    step.finish_gradients()
    # Mean averages the two rows of the shared Jacobian: half the summed gradient.
    scale = 1.0 if aggregator == "sum" else 0.5
    for (name, p), q in zip(aggregated.named_parameters(), plain.parameters(), strict=True):
        shared = name.startswith(("frontend.", "encoder."))
        torch.testing.assert_close(p.grad, q.grad * (scale if shared else 1.0), rtol=1e-9, atol=1e-12, msg=name)


@pytest.mark.parametrize("aggregator", sorted(AGGREGATORS))
def test_each_aggregator_trains(aggregator):
    model = tiny_model()
    batch = as_batch(*double_batch())
    step = tiny_step(model, {"aggregator": aggregator}, optimizer=torch.optim.Adam, lr=3e-3)
    losses = [step(batch, 1, 1)[0]["loss"] for _ in range(4)]
    assert losses[-1] < losses[0] - 0.5, losses
    assert not any(hasattr(p, "jac") for p in model.parameters())  # every Jacobian consumed


@pytest.mark.parametrize("weighting", ["uncertainty", "gradnorm", "dwa", "famo"])
def test_each_weighting_trains_and_its_weights_move(weighting):
    model = tiny_model()
    step = tiny_step(model, {"weighting": weighting}, optimizer=torch.optim.Adam, lr=3e-3)
    weights, losses = [], []
    for epoch in range(1, 4):  # DWA moves from the third epoch on
        for seed in range(2):
            stats, _ = step(as_batch(*double_batch(seed)), epoch, 1)
            losses.append(stats["loss"])
            weights.append((stats["mtl_weight_surface"], stats["mtl_weight_meaning"]))
        step.end_epoch()
    assert losses[-1] < losses[0], losses
    assert weights[0] != weights[-1], weights
    if weighting == "gradnorm":  # renormalised to the number of outputs
        assert sum(weights[-1]) == pytest.approx(2.0, rel=1e-6)
        assert weights[-1][0] != pytest.approx(1.0)
    if weighting == "dwa":
        assert weights[3] == (1.0, 1.0) and sum(weights[-1]) == pytest.approx(2.0, rel=1e-6)
    if weighting == "famo":  # a convex combination
        assert sum(weights[-1]) == pytest.approx(1.0, rel=1e-5)


def test_famo_weights_follow_its_formula_and_favour_the_loss_that_fell_less():
    """w_o = c z_o / L_o with c = 1 / sum z/L; after output 0's loss halves and
    output 1's stays, the logits move towards output 1."""
    famo = FAMO(("surface", "meaning"), lr=0.1, gamma=0.0)
    losses = torch.tensor([4.0, 1.0], requires_grad=True)
    famo.loss(losses, [], 1).backward()
    # z = (1/2, 1/2): w = (1/4, 1) / (5/4)
    torch.testing.assert_close(famo.weights(), torch.tensor([0.2, 0.8]))
    torch.testing.assert_close(losses.grad, torch.tensor([0.2, 0.8]))
    assert famo.xi.grad is None  # nothing to learn from before a second step
    famo.step(1)
    famo.loss(torch.tensor([2.0, 1.0]), [], 1)
    famo.step(1)
    assert famo.xi[1] > famo.xi[0]
    famo.loss(torch.tensor([float("nan"), 1.0]), [], 1)  # a skipped step: not the next reference
    torch.testing.assert_close(famo.previous, torch.log(torch.tensor([2.0, 1.0]) + FAMO.EPS))


def test_a_non_finite_loss_skips_the_aggregated_step_and_drops_the_jacobians():
    model = tiny_model()
    feats, lens, targets = double_batch()
    before = [p.detach().clone() for p in model.parameters()]
    step = tiny_step(model, {"aggregator": "upgrad"}, accum_grad=2)
    assert step(as_batch(feats, lens, targets), 1, 1) is None  # accumulating: Jacobians held
    assert any(hasattr(p, "jac") for p in model.parameters())
    assert step(as_batch(feats * float("nan"), lens, targets), 1, 2) is None
    assert step.skipped == 1
    assert not any(hasattr(p, "jac") for p in model.parameters())
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))


def test_mtl_on_a_single_output_model_is_refused():
    torch.manual_seed(0)
    model = build_model(_tiny_config("sso"), VOCAB)
    with pytest.raises(ValueError, match=r"train\.mtl: .*DO model"):
        tiny_step(model, {"aggregator": "upgrad"})


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="choose one"):
        MTLConfig(aggregator="upgrad", weighting="dwa")
    bad = [
        ({"train": {"mtl": {"aggregator": "upgard"}}}, r"train\.mtl\.aggregator"),
        ({"train": {"mtl": {"gradnorm_alpha": -1}}}, r"train\.mtl\.gradnorm_alpha"),
        ({"train": {"mtl": {"weighting": "uw"}}}, r"train\.mtl\.weighting"),
        ({"train": {"mtl": {"temperature": 2}}}, r"train\.mtl\.temperature"),
        ({"study": {"models": {"do_pcgrad": {"mode": "do", "train": {"mtl": {"aggregator": "pc"}}}}}},
         r"study\.models\.do_pcgrad\.train\.mtl\.aggregator"),  # fmt: skip
        # Shared by every model: the SO models cannot take it.
        ({"train": {"mtl": {"aggregator": "upgrad"}}}, r"train\.mtl: .*two outputs.*sso is SSO"),
        ({"study": {"models": {"mso": {"train": {"mtl": {"weighting": "dwa"}}}}}},
         r"study\.models\.mso\.train\.mtl: .*MSO"),  # fmt: skip
    ]
    for raw, key in bad:
        with pytest.raises(ValueError, match=key):
            Config.model_validate(raw)
    cfg = Config.model_validate({"study": {"models": {"sso": {}, "do_upgrad": {"mode": "do", "train": {"mtl": {"aggregator": "upgrad"}}}}}})
    assert train_config(cfg, None, "do_upgrad").mtl.aggregator == "upgrad"
    assert train_config(cfg, None, "sso").mtl is None


def test_an_unset_mtl_section_leaves_the_fingerprint_of_earlier_runs_alone():
    cfg = Config.model_validate({})
    assert "mtl" not in cfg.train.model_dump()
    assert cfg.train.model_copy(update={"mtl": MTLConfig(weighting="dwa")}).model_dump()["mtl"]["weighting"] == "dwa"


def test_config_error_is_a_config_error_class():
    # train_config raises the project's ConfigError (the CLI prints it without a traceback).
    cfg = Config.model_validate({})
    with pytest.raises(ConfigError):
        train_config(cfg.model_copy(update={"train": cfg.train.model_copy(update={"mtl": MTLConfig(aggregator="mgda")})}), None, "sso")


@pytest.mark.parametrize(
    "method",
    [
        {"hierarchy": {"surface_layer": 1}},  # two shared feature tensors
        {"encoder": {"task_specific_layers": 1}},
    ],
    ids=["hierarchy", "branches"],
)
def test_sum_aggregation_of_a_method_equals_its_plain_backward(method):
    """Summing the rows of the shared Jacobian gives the plain backward of
    ``sum_o L_o``: with a surface head on an intermediate block (two shared
    feature tensors) no gradient path is counted twice."""
    feats, lens, targets = double_batch()

    def model():
        torch.manual_seed(0)
        return build_model(_tiny_config("do", **method), VOCAB).double()

    plain, aggregated = model(), model()
    loss, _ = plain(feats, lens, targets)
    loss.backward()
    step = tiny_step(aggregated, {"aggregator": "sum"})
    step.backward(step.forward(feats, lens, targets)[0])
    step.finish_gradients()
    for (name, p), q in zip(aggregated.named_parameters(), plain.parameters(), strict=True):
        if q.grad is None:
            assert p.grad is None or not p.grad.any(), name
            continue
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-8, atol=1e-10, msg=name)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"encoder": {"task_specific_layers": 1}, "separation": {"kind": "cka", "weight": 1.0}}, "with model.separation"),
        ({"hierarchy": {"surface_layer": 1, "self_condition": True}}, "with hierarchy.self_condition"),
    ],
)
def test_aggregation_refuses_methods_whose_parameters_are_neither_shared_nor_one_tasks(model, message):
    # Validated when the config loads, as every variant is.
    with pytest.raises(ValueError, match=rf"study.models.do_x.train.mtl.aggregator: gradient aggregation {message}"):
        Config(study={"models": {"do_x": {"mode": "do", "model": model, "train": {"mtl": {"aggregator": "upgrad"}}}}})
    weighted = Config(study={"models": {"do_x": {"mode": "do", "model": model, "train": {"mtl": {"weighting": "uncertainty"}}}}})
    assert train_config(weighted, "en", "do_x").mtl.weighting == "uncertainty"  # weighting handles both


def test_an_aggregated_step_refuses_a_model_with_a_separation_penalty():
    """Also when the step is built without a config (train() called directly):
    the penalty would otherwise be silently left out of the gradients."""
    torch.manual_seed(0)
    model = build_model(_tiny_config("do", encoder={"task_specific_layers": 1},
                                     separation={"kind": "cka", "weight": 1.0}), VOCAB)  # fmt: skip
    with pytest.raises(ValueError, match="gradient aggregation with a separation penalty"):
        tiny_step(model, {"aggregator": "upgrad"})
