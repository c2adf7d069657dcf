import torch

from dualasr.model import DecoderConfig
from dualasr.model.decoder import TransformerDecoder


def make_decoder():
    torch.manual_seed(0)
    cfg = DecoderConfig(layers=2, heads=2, ffn_dim=32, dropout=0.0, attn_dropout=0.0)
    return TransformerDecoder(11, 16, cfg).eval()


def inputs():
    torch.manual_seed(1)
    memory = torch.randn(2, 7, 16)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    tokens = torch.randint(1, 10, (2, 6))
    return tokens, memory, mask


def test_shapes_and_layers():
    dec = make_decoder()
    tokens, memory, mask = inputs()
    logits, layers = dec(tokens, memory, mask, return_layers=True)
    assert logits.shape == (2, 6, 11)
    assert len(layers) == 2 and all(h.shape == (2, 6, 16) for h in layers)
    assert dec(tokens, memory, mask)[1] is None


def test_causal_future_tokens_do_not_change_earlier_positions():
    dec = make_decoder()
    tokens, memory, mask = inputs()
    changed = tokens.clone()
    changed[:, 3:] = (changed[:, 3:] + 1) % 10 + 1
    a, _ = dec(tokens, memory, mask)
    b, _ = dec(changed, memory, mask)
    assert torch.allclose(a[:, :3], b[:, :3], atol=1e-6)
    assert not torch.allclose(a[:, 3:], b[:, 3:])


def test_padded_memory_frames_are_ignored():
    dec = make_decoder()
    tokens, memory, mask = inputs()
    memory2 = memory.clone()
    memory2[1, 4:] = 99.0
    a, _ = dec(tokens, memory, mask)
    b, _ = dec(tokens, memory2, mask)
    assert torch.allclose(a, b, atol=1e-5)


def test_cached_steps_equal_teacher_forced_pass():
    dec = make_decoder()
    tokens, memory, mask = inputs()
    full, _ = dec(tokens, memory, mask)
    state = dec.init_state(memory, mask)
    for i in range(tokens.size(1)):
        step, state = dec.step(tokens[:, i], state)
        assert torch.allclose(step, full[:, i], atol=1e-5)
    assert state.length == tokens.size(1)


def test_state_select_reorders_hypotheses():
    dec = make_decoder()
    tokens, memory, mask = inputs()
    state = dec.init_state(memory, mask)
    for i in range(3):
        _, state = dec.step(tokens[:, i], state)
    swapped = state.select(torch.tensor([1, 0, 0]))
    out, _ = dec.step(tokens[[1, 0, 0], 3], swapped)
    full, _ = dec(tokens[[1, 0, 0], :4], memory[[1, 0, 0]], mask[[1, 0, 0]])
    assert torch.allclose(out, full[:, 3], atol=1e-5)


def test_scaled_token_embeddings_have_the_scale_of_the_positions():
    # Token embedding * sqrt(d) and the sinusoidal table (std ~0.7) must be of the
    # same order, or the positions drown and the decoder cannot learn word order.
    d = 256
    dec = TransformerDecoder(500, d, DecoderConfig(layers=1, heads=4, ffn_dim=64))
    scaled = dec.embed.weight.detach() * d**0.5
    assert 0.8 < float(scaled.std()) < 1.25
