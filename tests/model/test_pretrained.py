"""Pretrained encoders and the Whisper SO baseline, on tiny random models saved
to a directory and loaded back as users load theirs (tests/pretrained_fixtures.py)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from dualasr.analysis.capture import model_states
from dualasr.decode.search import decode_dual
from dualasr.model import build_model, preset
from dualasr.model.pretrained import PretrainedError, load_pretrained
from dualasr.text.tokenizer import Tokenizer
from tests.pretrained_fixtures import save_pretrained_dir

FAMILIES = ("whisper", "wav2vec2", "hubert", "wavlm")
TEXTS = ["hello world", "a cat sat"]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    return {f: save_pretrained_dir(root, f) for f in FAMILIES}


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.build(TEXTS, "char")


def _batch(tok):
    torch.manual_seed(0)
    wav, lens = torch.randn(2, 24000) * 0.1, torch.tensor([24000, 17000])
    ids = [tok.encode(t) for t in TEXTS]
    ys = torch.full((2, max(map(len, ids))), -1)
    for i, s in enumerate(ids):
        ys[i, : len(s)] = torch.tensor(s)
    y = (ys, torch.tensor([len(s) for s in ids]))
    return wav, lens, {"surface": y, "meaning": y}


def _model(d, tok, mode="do", **pretrained):
    cfg = preset("smoke", mode=mode, d_model=32, specaug={"enabled": False},
                 pretrained={"path": str(d), **pretrained})  # fmt: skip
    return build_model(cfg, {"surface": len(tok), "meaning": len(tok)}, tokenizers={"surface": tok}, language="en")


def _step(model, batch):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss, stats = model(*batch)
    loss.backward()
    opt.step()
    return stats


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mode", ["sso", "do"])
def test_training_step_moves_encoder_and_heads(dirs, tok, family, mode):
    model = _model(dirs[family], tok, mode)
    assert model.input_kind == "audio"
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    stats = _step(model, _batch(tok))
    assert torch.isfinite(torch.as_tensor(stats["loss"]))
    changed = {n for n, p in model.named_parameters() if n in before and not torch.equal(p, before[n])}
    assert any(n.startswith("encoder.model.") for n in changed)
    assert any(n.startswith("decoders.") for n in changed)


def test_decoding_and_layer_capture(dirs, tok):
    model = _model(dirs["wav2vec2"], tok, "do").eval()
    wav, lens, _ = _batch(tok)
    with torch.no_grad():
        hyps = decode_dual(model, wav, lens, beam=2)
    assert set(hyps) == {"surface", "meaning"} and len(hyps["surface"]) == 2
    states = model_states(model, {"surface": tok, "meaning": tok}, [_Cut(t) for t in TEXTS], wav, lens)
    assert len(states.encoder["surface"]) == 2  # the pretrained encoder's two transformer layers
    frames = states.frame_mask.sum(1)
    assert frames[0] > frames[1]  # the shorter utterance has fewer valid frames
    assert states.encoder["surface"][0].shape[:2] == states.frame_mask.shape


class _Cut:
    """What model_states reads of a cut: its supervision's texts."""

    def __init__(self, text):
        from types import SimpleNamespace

        sup = SimpleNamespace(text=text, language="en", custom={"surface": text, "meaning": text})
        self.supervisions = [sup]
        self.id = text


def test_frozen_and_top_layers(dirs, tok):
    frozen = _model(dirs["hubert"], tok, "sso", train_layers=0)
    assert not any(p.requires_grad for p in frozen.encoder.model.parameters())
    enc = {n: p.detach().clone() for n, p in frozen.encoder.model.named_parameters()}
    _step(frozen, _batch(tok))
    assert all(torch.equal(p, enc[n]) for n, p in frozen.encoder.model.named_parameters())
    top = _model(dirs["whisper"], tok, "sso", train_layers=1)
    trainable = {n for n, p in top.encoder.model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("layers.1.", "layer_norm.")) for n in trainable)


def test_weighted_layer_sum_learns_its_weights(dirs, tok):
    model = _model(dirs["wavlm"], tok, "do", layer_sum=True)
    w0 = model.encoder.layer_weights.detach().clone()
    assert w0.shape == (3,)  # embeddings + 2 layers
    _step(model, _batch(tok))
    assert not torch.equal(model.encoder.layer_weights, w0)


def test_hierarchy_reads_a_pretrained_layer(dirs, tok):
    cfg = preset("smoke", mode="do", d_model=32, encoder={"layers": 2}, hierarchy={"surface_layer": 1},
                 pretrained={"path": str(dirs["wav2vec2"])})  # fmt: skip
    model = build_model(cfg, {"surface": len(tok), "meaning": len(tok)})
    enc = model.encode(*_batch(tok)[:2])
    assert enc.ctc_in["surface"] is not enc.out["meaning"] and len(enc.shared_features) == 2


def test_whisper_so_step_and_decode(dirs, tok):
    cfg = preset("smoke", mode="mso", pretrained={"path": str(dirs["whisper"]), "whole": True})
    model = build_model(cfg, {"meaning": len(tok)}, tokenizers={"meaning": tok}, language="en")
    before = model.model.model.decoder.layers[0].fc1.weight.detach().clone()
    stats = _step(model, _batch(tok))
    assert set(stats) >= {"loss", "loss_att_meaning", "acc_meaning"}
    assert not torch.equal(model.model.model.decoder.layers[0].fc1.weight, before)
    model.eval()
    wav, lens, _ = _batch(tok)
    hyps = decode_dual(model, wav, lens, beam=2)
    assert list(hyps) == ["meaning"] and len(hyps["meaning"]) == 2
    assert all(all(0 <= i < len(tok) for i in h.tokens) for h in hyps["meaning"])
    enc = model.encode(wav, lens, return_layers=True)
    assert len(enc.layers["meaning"]) == 2


def test_unusable_directories_are_named(dirs, tmp_path):
    from dualasr.model.config import PretrainedConfig

    def fails(d, match, **kw):
        with pytest.raises(PretrainedError, match=match) as e:
            load_pretrained(PretrainedConfig(path=str(d), **kw))
        assert str(d) in str(e.value)

    no_weights = tmp_path / "no_weights"
    shutil.copytree(dirs["wav2vec2"], no_weights)
    (no_weights / "model.safetensors").unlink()
    fails(no_weights, "no weights")
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    fails(other, "holds a 'bert' model")
    (other / "config.json").write_text("{not json")
    fails(other, "config.json cannot be read")
    fails(dirs["wav2vec2"], "needs a Whisper model", whole=True)
    mismatched = tmp_path / "mismatched"
    shutil.copytree(dirs["whisper"], mismatched)
    shutil.copy(dirs["wav2vec2"] / "preprocessor_config.json", mismatched)
    fails(mismatched, "does not fit config.json")
    bins = tmp_path / "bins"
    shutil.copytree(dirs["whisper"], bins)
    fe = json.loads((bins / "preprocessor_config.json").read_text())
    (bins / "preprocessor_config.json").write_text(json.dumps({**fe, "feature_size": 128}))
    fails(bins, "128 mel bins")
    with pytest.raises(PretrainedError, match="local Hugging Face cache"):
        load_pretrained(PretrainedConfig(path="openai/not-a-cached-model"))


def test_gradient_aggregation_on_a_pretrained_do_model(dirs, tok):
    from torchjd.aggregation import UPGrad
    from torchjd.autojac import jac_to_grad, mtl_backward

    model = _model(dirs["wav2vec2"], tok, "do")
    t = model.task_losses(*_batch(tok))
    mtl_backward([t.losses["surface"], t.losses["meaning"]], features=t.shared_features)
    shared = [p for p in model.parameters() if hasattr(p, "jac")]
    assert shared and all(n.startswith("encoder.") for n, p in model.named_parameters() if hasattr(p, "jac"))
    jac_to_grad(shared, UPGrad())
    assert model.encoder.model.encoder.layers[0].attention.q_proj.weight.grad is not None


def test_the_fingerprint_changes_with_the_weights(dirs, tmp_path):
    from dualasr.model.pretrained import directory_identity

    copy = tmp_path / "copy"
    shutil.copytree(dirs["hubert"], copy)
    assert directory_identity(str(copy)) == directory_identity(str(dirs["hubert"]))
    data = (copy / "model.safetensors").read_bytes()
    (copy / "model.safetensors").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one bit of one weight
    assert directory_identity(str(copy)) != directory_identity(str(dirs["hubert"]))


def test_gradient_checkpointing_on_gpu_keeps_the_gradients(dirs, tok, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # it is switched on for GPUs only
    model = _model(dirs["whisper"], tok, "sso", train_layers=1)
    assert model.encoder.model.is_activation_checkpointing
    loss, _ = model(*_batch(tok))
    loss.backward()
    assert model.encoder.model.layers[1].fc1.weight.grad.abs().sum() > 0  # above the frozen layer 0


def test_a_malicious_pytorch_model_bin_runs_nothing(dirs, tmp_path):
    """A directory whose weights are a pickle that would run a command:
    transformers reads .bin weights with torch.load(weights_only=True)."""
    from dualasr.model.config import PretrainedConfig
    from tests.train.test_safe_loading import CreatesMarker

    bad, marker = tmp_path / "bad", tmp_path / "MARKER"
    shutil.copytree(dirs["wav2vec2"], bad)
    (bad / "model.safetensors").unlink()
    torch.save(CreatesMarker(marker), bad / "pytorch_model.bin")
    with pytest.raises(PretrainedError, match="weights cannot be loaded") as e:
        load_pretrained(PretrainedConfig(path=str(bad)))
    assert str(bad) in str(e.value)
    assert not marker.exists()


@pytest.mark.parametrize("family", FAMILIES)
def test_task_specific_top_layers_and_a_separation_penalty(dirs, tok, family):
    cfg = preset("smoke", mode="do", d_model=32, specaug={"enabled": False}, encoder={"task_specific_layers": 1},
                 separation={"kind": "orthogonality", "weight": 1.0}, pretrained={"path": str(dirs[family])})  # fmt: skip
    model = build_model(cfg, {"surface": len(tok), "meaning": len(tok)})
    assert set(model.encoder.branches) == {"surface", "meaning"}
    # A checkpoint of it loads into the architecture load_model builds (no pretrained weights read).
    again = build_model(cfg, {"surface": len(tok), "meaning": len(tok)}, pretrained_weights=False)
    again.load_state_dict(model.state_dict())
    enc = model.encode(*_batch(tok)[:2], return_layers=True)
    # Each output's copy starts from the pretrained layer, so the two start equal, as separate tensors.
    assert enc.out["surface"] is not enc.out["meaning"] and torch.equal(enc.out["surface"], enc.out["meaning"])
    assert len(enc.layers["surface"]) == 2 and enc.layers["surface"][0] is enc.layers["meaning"][0]
    stats = _step(model, _batch(tok))
    assert "penalty_orthogonality" in stats
    enc = model.encode(*_batch(tok)[:2])
    assert not torch.equal(enc.out["surface"], enc.out["meaning"])  # one step apart already


def test_adapters_on_the_top_pretrained_layer(dirs, tok):
    cfg = preset("smoke", mode="do", d_model=32, specaug={"enabled": False}, adapters={"layers": 1, "dim": 8},
                 pretrained={"path": str(dirs["wavlm"])})  # fmt: skip
    model = build_model(cfg, {"surface": len(tok), "meaning": len(tok)})
    up = model.encoder.adapters["meaning"][0].up.weight
    assert torch.equal(up, torch.zeros_like(up))  # starts as the plain model
    _step(model, _batch(tok))
    assert not torch.equal(model.encoder.adapters["meaning"][0].up.weight, torch.zeros_like(up))


@pytest.mark.parametrize("family", ["whisper", "wavlm"])
def test_a_self_conditioned_hierarchy_on_a_pretrained_encoder(dirs, tok, family):
    cfg = preset("smoke", mode="do", d_model=32, specaug={"enabled": False}, encoder={"layers": 2},
                 hierarchy={"surface_layer": 1, "self_condition": True}, pretrained={"path": str(dirs[family])})  # fmt: skip
    model = build_model(cfg, {"surface": len(tok), "meaning": len(tok)})
    enc = model.encode(*_batch(tok)[:2], return_layers=True)
    assert len(enc.layers["surface"]) == 1 and len(enc.layers["meaning"]) == 2
    assert len(enc.shared_features) == 2
    w0 = model.encoder.conditioning.weight.detach().clone()
    _step(model, _batch(tok))
    assert not torch.equal(model.encoder.conditioning.weight, w0)


def test_configs_without_pretrained_dump_as_before():
    """Runs fingerprinted before model.pretrained existed stay reusable."""
    assert "pretrained" not in preset("smoke").model_dump()
    assert preset("smoke", pretrained={"path": "x"}).model_dump()["pretrained"]["path"] == "x"
