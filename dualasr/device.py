"""The device a process computes on (training, decoding, analysis)."""

from __future__ import annotations

import torch


def pick_device(local_rank: int = 0) -> torch.device:
    """CUDA if available, then MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
