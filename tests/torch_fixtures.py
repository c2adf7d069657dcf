"""Tiny models and batches for model and decode tests (small dims keep the suite fast)."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch

from dualasr.model import build_model, preset

VOCAB = {"surface": 12, "meaning": 15}


def _tiny_config(mode: str = "do", **overrides):
    """d=32, 2 encoder blocks, 2 decoder blocks; no SpecAugment, no dropout
    unless overridden, so outputs are deterministic."""
    fields = {
        "d_model": 32,
        "encoder": {
            "layers": 2,
            "heads": 2,
            "ffn_dim": 64,
            "kernel": 5,
            "dropout": 0.0,
            "attn_dropout": 0.0,
        },
        "decoder": {"layers": 2, "heads": 2, "ffn_dim": 64, "dropout": 0.0, "attn_dropout": 0.0},
        "specaug": {"enabled": False},
    }
    for key, value in overrides.items():
        fields[key] = (
            {**fields[key], **value} if isinstance(value, dict) and key in fields else value
        )
    return preset("smoke", mode=mode, **fields)


def _random_batch(seed: int = 0, lens=(64, 47, 30), n_mels: int = 80, vocab=VOCAB):
    """Features ``(3, 64, 80)`` with padded frames filled with noise, and
    targets for both outputs padded with -1."""
    g = torch.Generator().manual_seed(seed)
    lens_t = torch.tensor(lens)
    feats = torch.randn(len(lens), max(lens), n_mels, generator=g)
    targets = {}
    for name, v in vocab.items():
        t_lens = torch.randint(2, 7, (len(lens),), generator=g)
        ys = torch.randint(1, v - 1, (len(lens), int(t_lens.max())), generator=g)
        ys[torch.arange(ys.size(1))[None] >= t_lens[:, None]] = -1
        targets[name] = (ys, t_lens)
    return feats, lens_t, targets


@pytest.fixture
def tiny_config():
    return _tiny_config


@pytest.fixture
def random_batch():
    return _random_batch


@pytest.fixture
def tiny_do():
    torch.manual_seed(0)
    return build_model(_tiny_config("do"), VOCAB)


@pytest.fixture
def vocab():
    return dict(VOCAB)


@contextmanager
def single_thread():
    """One intra-op thread inside the block, the previous count after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def one_thread():
    """These tensors are tiny: one intra-op thread is faster than two and
    does not fight other jobs on shared CPUs (two threads under load were
    10x slower here)."""
    with single_thread():
        yield
