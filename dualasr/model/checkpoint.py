"""Model files: writing and reading checkpoints, and loading a trained model.

A checkpoint is a dict of tensors and plain data saved with ``torch.save``:
``{"model": state_dict, "model_config": ModelConfig.model_dump(), "tokenizers":
{output: Tokenizer.to_dict()}, "language", "name", "label", ..., "checksum"}``
(training adds optimizer, scheduler, scaler and RNG states to resumable
checkpoints). It is read with ``torch.load(weights_only=True)``, so loading one
runs no code, and its ``checksum`` (:func:`state_checksum`) is verified on
every load. Decode, analysis and the benchmarks read models through
:func:`load_model` without importing training code.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import warnings
from pathlib import Path

import torch

from dualasr.atomic import atomic_path
from dualasr.errors import DualasrError
from dualasr.text.tokenizer import Tokenizer

from .asr import DualASR, build_model
from .config import ModelConfig

#: The averaged model of a run directory, which decode, study and analyze read.
MODEL_FILE = "model.pt"


class CheckpointError(DualasrError):
    """A checkpoint that cannot be used (corrupt, or from another configuration)."""


def state_checksum(obj) -> str:
    """``"sha256:<hex>"`` over every tensor in ``obj`` (nested dicts, lists and
    tuples; other values are skipped). Each tensor contributes its key path
    (``repr`` of the keys and indices joined by ``/``), dtype, shape and bytes,
    in the order of the sorted key paths, so the result does not depend on
    dict order nor on the device the tensors are on."""
    tensors: list[tuple[str, torch.Tensor]] = []

    def walk(x, where: str) -> None:
        if isinstance(x, torch.Tensor):
            tensors.append((where, x))
        elif isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{where}/{k!r}")
        elif isinstance(x, list | tuple):
            for i, v in enumerate(x):
                walk(v, f"{where}/{i}")

    walk(obj, "")
    h = hashlib.sha256()
    for where, t in sorted(tensors, key=lambda item: item[0]):
        t = t.detach().cpu().contiguous()
        h.update(f"{where}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())  # raw bytes, any dtype (numpy lacks bfloat16)
    return f"sha256:{h.hexdigest()}"


def save_atomic(obj: dict, path: Path) -> None:
    """``torch.save`` the checkpoint dict ``obj`` with its :func:`state_checksum`
    under ``"checksum"``, to a temporary file then rename: a kill never leaves
    half a checkpoint."""
    with atomic_path(path) as tmp:
        torch.save({**obj, "checksum": state_checksum(obj)}, tmp)


def load_checkpoint(
    path: Path, map_location="cpu", required: tuple[str, ...] = ("model", "model_config"),
    error: type[CheckpointError] = CheckpointError,
) -> dict:  # fmt: skip
    """A dict saved by :func:`save_atomic` with the ``required`` keys and its
    checksum verified; else ``error`` naming the file. Only tensors and plain
    data are unpickled (``weights_only``): a file asking for anything else,
    such as a function to call, is refused before any of it runs. A file with
    no checksum (written before dualasr stored one) is refused too: its
    weights cannot be verified."""
    try:
        with warnings.catch_warnings():
            # Before refusing a plain pickle torch warns about its protocol: the error says enough.
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:  # torch's restricted unpickler refused the file
        # torch names the refused callable or class as "GLOBAL <module>.<name>".
        unsafe = re.search(r"GLOBAL (\S+)", str(e))
        if unsafe:
            raise error(f"{path}: holds something other than tensors and plain data ({unsafe[1]}); "
                        "not loaded, since loading it could run code") from None  # fmt: skip
        raise error(f"{path}: corrupt or unreadable checkpoint (not tensors and plain data as "
                    "torch.save writes them); not loaded") from None  # fmt: skip
    except Exception as e:  # truncated zip, ...
        raise error(f"{path}: corrupt or unreadable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or not set(required) <= set(ckpt):
        raise error(f"{path}: not a dualasr checkpoint (no {' / '.join(required)})")
    if "checksum" not in ckpt:
        raise error(f"{path}: no checksum (written by a dualasr older than checksums), so its weights "
                    "cannot be verified; not loaded: train it again with this version")  # fmt: skip
    if ckpt["checksum"] != state_checksum(ckpt):
        raise error(f"{path}: checksum mismatch: the weights are corrupt; not loaded")
    return ckpt


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[DualASR, dict[str, Tokenizer]]:
    """A trained model (``model.pt`` or any checkpoint) and its tokenizers, in eval mode."""
    path = Path(path)
    ckpt = load_checkpoint(path)
    model_cfg = ModelConfig.model_validate(ckpt["model_config"])
    tokenizers = {o: Tokenizer.from_dict(t) for o, t in ckpt["tokenizers"].items()}
    # A pretrained model's architecture comes from its directory; its weights from the checkpoint.
    model = build_model(model_cfg, {o: len(t) for o, t in tokenizers.items()}, tokenizers=tokenizers,
                        language=ckpt.get("language"), pretrained_weights=False)  # fmt: skip
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the saved model config ({e})") from None
    model.language = ckpt.get("language")  # of the training data; None in checkpoints that predate it
    return model.to(device).eval(), tokenizers
