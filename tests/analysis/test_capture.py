"""Representation capture: shapes, masks, batch order, teacher forcing, self-CKA = 1."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from dualasr.analysis.capture import capture_batches, model_states, ordered_cuts
from dualasr.analysis.cka import LinearCKAAccumulator
from dualasr.data.manifest import load_manifest, supervision, target_text
from dualasr.model.checkpoint import load_model
from tests.analysis.conftest import D_MODEL, DECODER_LAYERS, ENCODER_LAYERS


@pytest.fixture
def models(tiny_study):
    run = tiny_study / "exp" / "en"
    return {name: load_model(run / name / "seed0" / "model.pt") for name in ("sso", "mso", "do", "do_split")}


@pytest.fixture
def test_manifest(tiny_corpus):
    return tiny_corpus / "fbank" / "test.jsonl.gz"


def test_capture_gives_every_layer_with_masks(models, test_manifest):
    cuts = {c.id: c for c in load_manifest(test_manifest, check_audio=False)}
    batches = list(capture_batches(models, test_manifest, batch_size=4))
    assert [len(b.ids) for b in batches] == [4, 2]  # 6 test cuts, streamed 4 + 2
    assert [i for b in batches for i in b.ids] == [c.id for c in ordered_cuts(test_manifest)]
    for batch in batches:
        n = len(batch.ids)
        # Valid frames = the encoder's subsampled length of each utterance's features.
        _, frame_lens = models["sso"][0].frontend(
            torch.zeros(n, max(cuts[i].num_frames for i in batch.ids), 80),
            torch.tensor([cuts[i].num_frames for i in batch.ids]),
        )
        for name, st in batch.models.items():
            model, tokenizers = models[name]
            assert set(st.encoder) == set(model.outputs) == set(st.decoder) == set(st.token_mask)
            T = st.frame_mask.shape[1]
            assert st.frame_mask.dtype == torch.bool and st.frame_mask.shape == (n, T)
            assert st.frame_mask.sum(1).tolist() == frame_lens.tolist()
            assert st.frame_mask[torch.arange(n), frame_lens - 1].all()
            for o in model.outputs:
                assert len(st.encoder[o]) == ENCODER_LAYERS
                assert all(h.shape == (n, T, D_MODEL) for h in st.encoder[o])
                assert len(st.decoder[o]) == DECODER_LAYERS
                n_tokens = [len(tokenizers[o].encode(target_text(cuts[i], o, tokenizers[o].unit))) for i in batch.ids]
                L = max(n_tokens) + 1
                assert all(h.shape == (n, L, D_MODEL) for h in st.decoder[o])
                assert st.token_mask[o].sum(1).tolist() == [k + 1 for k in n_tokens]  # sos + tokens
        # Every model sees the same frames.
        masks = [st.frame_mask for st in batch.models.values()]
        assert all(torch.equal(m, masks[0]) for m in masks)
    do = batches[0].models["do"]
    # A shared encoder hands the same tensors to both outputs; task-specific top blocks do not.
    assert all(torch.equal(a, b) for a, b in zip(do.encoder["surface"], do.encoder["meaning"], strict=True))
    br = batches[0].models["do_split"]
    assert torch.equal(br.encoder["surface"][0], br.encoder["meaning"][0])
    assert not torch.allclose(br.encoder["surface"][1], br.encoder["meaning"][1])


def test_capture_is_deterministic_in_eval_mode(models, test_manifest):
    for model, _ in models.values():
        model.train()  # capture must switch dropout off itself
    first = [b.models["do"].decoder["meaning"][-1] for b in capture_batches(models, test_manifest, 4)]
    second = [b.models["do"].decoder["meaning"][-1] for b in capture_batches(models, test_manifest, 4)]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not any(m.training for m, _ in models.values())


def test_decoder_states_are_teacher_forced(models, test_manifest):
    """Changing the reference from token k on leaves positions 0..k (sos, y1..yk-1
    as inputs) unchanged and changes position k+1, the first that reads the new token."""
    model, tokenizers = models["do"]
    tok = tokenizers["surface"]
    cut = max(ordered_cuts(test_manifest), key=lambda c: len(supervision(c).custom["surface"]))
    text = supervision(cut).custom["surface"]
    k = len(text) - 2  # change the second-to-last character
    new_char = next(t for t in tok.tokens[2:-1] if t not in (text[k], " ") and len(t) == 1)
    changed = copy.deepcopy(cut)
    supervision(changed).custom["surface"] = text[:k] + new_char + text[k + 1 :]
    ids = [tok.encode(t) for t in (text, supervision(changed).custom["surface"])]
    first_diff = next(i for i, (a, b) in enumerate(zip(*ids, strict=True)) if a != b)
    feats = torch.from_numpy(np.stack([cut.load_features()] * 2))
    lens = torch.tensor([cut.num_frames] * 2)
    st = model_states(model.eval(), tokenizers, [cut, changed], feats, lens)
    for h in st.decoder["surface"]:
        # Input position p holds token p (sos at 0): positions <= first_diff see the same prefix.
        assert torch.allclose(h[0, : first_diff + 1], h[1, : first_diff + 1], atol=1e-6)
        assert not torch.allclose(h[0, first_diff + 1], h[1, first_diff + 1], atol=1e-4)
    # The meaning decoder's reference did not change: identical states.
    assert all(torch.allclose(h[0], h[1], atol=1e-6) for h in st.decoder["meaning"])


def test_cka_of_a_model_with_itself_is_one_at_every_layer(models, test_manifest):
    """Capture the DO model twice on the same batches: frame-level encoder CKA and
    utterance-level decoder CKA are 1 on the whole diagonal, both estimators."""
    twins = {"a": models["do"], "b": models["do"]}
    enc = LinearCKAAccumulator(ENCODER_LAYERS, ENCODER_LAYERS, level="frame")
    dec = LinearCKAAccumulator(DECODER_LAYERS, DECODER_LAYERS, level="utterance")
    for batch in capture_batches(twins, test_manifest, batch_size=4):
        a, b = batch.models["a"], batch.models["b"]
        enc.update(a.encoder["surface"], b.encoder["surface"], mask=a.frame_mask)
        dec.update(a.decoder["meaning"], b.decoder["meaning"], mask=a.token_mask["meaning"],
                   mask_y=b.token_mask["meaning"])  # fmt: skip
    assert dec.n_examples == 6
    for acc in (enc, dec):
        for debiased in (True, False):
            np.testing.assert_allclose(np.diag(acc.compute(debiased=debiased)), 1.0, atol=1e-6)


def test_capture_reads_each_methods_layers(models, test_manifest):
    """Per-output encoder lists of the three architectural methods: trunk blocks
    are the same tensors (same storage) in both lists; task-specific and adapted
    blocks differ; a hierarchy's surface list stops at the block its CTC reads."""
    from dualasr.model import build_model
    from tests.analysis.conftest import tiny_model_config

    tokenizers = models["do"][1]
    vocab = {o: len(t) for o, t in tokenizers.items()}

    def build(**fields):
        cfg = tiny_model_config("do")
        return build_model(type(cfg).model_validate({**cfg.model_dump(), **fields}), vocab), tokenizers

    torch.manual_seed(0)
    variants = {
        "branches": models["do_split"],
        "hierarchy": build(hierarchy={"surface_layer": 1, "self_condition": True}),
        "adapters": build(adapters={"layers": 1, "dim": 4}),
    }
    with torch.no_grad():  # adapters start as the identity: move them off it
        for adapter in variants["adapters"][0].encoder.adapters.values():
            adapter[0].up.weight.normal_()
    st = next(capture_batches(variants, test_manifest, batch_size=4)).models
    for name in ("branches", "adapters"):
        s, m = st[name].encoder["surface"], st[name].encoder["meaning"]
        assert len(s) == len(m) == ENCODER_LAYERS
        assert s[0].data_ptr() == m[0].data_ptr()  # the shared block: one tensor
        assert s[1].data_ptr() != m[1].data_ptr() and not torch.allclose(s[1], m[1])
    s, m = st["hierarchy"].encoder["surface"], st["hierarchy"].encoder["meaning"]
    assert len(s) == 1 and len(m) == ENCODER_LAYERS and s[0].data_ptr() == m[0].data_ptr()
