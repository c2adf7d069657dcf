"""Model files: no code runs from one, corrupt weights are refused, and a
killed checkpoint write leaves nothing behind.

A malicious file is a pickle whose ``__reduce__`` would create a marker file
when unpickled; each loading path must refuse it with an error naming the file,
and the marker must not exist afterwards (the proof that nothing ran).
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from dualasr.cli import app
from dualasr.model.checkpoint import CheckpointError, load_checkpoint, load_model, save_atomic
from dualasr.model.lm import LMError, load_lm
from dualasr.train.trainer import average_checkpoints

runner = CliRunner()

#: A decode config that fuses a meaning LM (so ``--lm meaning=FILE`` is loaded).
DECODE_YAML = "decode: {beam: 2, lm_weight: {meaning: 0.4}}\n"


class CreatesMarker:
    """Unpickled, calls ``os.system("touch <marker>")``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def malicious(path: Path, kind: str, valid: Path, marker: Path) -> Path:
    """Write a file at ``path`` that runs a command when unpickled: a bare pickle
    (``pickle``), a torch file of that object alone (``torch``), or the valid
    checkpoint ``valid`` with one extra malicious key (``checkpoint``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "pickle":
        path.write_bytes(pickle.dumps(CreatesMarker(marker)))
    elif kind == "torch":
        torch.save(CreatesMarker(marker), path)
    else:
        torch.save({**load_checkpoint(valid, required=()), "extra": CreatesMarker(marker)}, path)
    return path


KINDS = ["pickle", "torch", "checkpoint"]


def refusal(path: Path, kind: str) -> str:
    """The start of the error for the malicious file ``path``: a bare pickle is not
    even a torch file (refused on its first bytes); the others are refused where
    the unpickler meets ``os.system``."""
    if kind == "pickle":
        return f"{path}: corrupt or unreadable checkpoint (not tensors and plain data"
    return f"{path}: holds something other than tensors and plain data (posix.system); not loaded"


def test_the_malicious_file_runs_its_command_when_unpickled(tmp_path, reference):
    """The fixture is live: loaded unsafely, each kind creates the marker."""
    for kind in KINDS:
        marker = tmp_path / f"MARKER_{kind}"
        path = malicious(tmp_path / f"{kind}.pt", kind, reference / "model.pt", marker)
        torch.load(path, weights_only=False) if kind != "pickle" else pickle.loads(path.read_bytes())
        assert marker.exists(), kind


@pytest.mark.parametrize("kind", KINDS)
def test_decode_model_refuses_a_malicious_file(tmp_path, reference, run, kind):
    marker = tmp_path / "MARKER"
    bad = malicious(tmp_path / "model.pt", kind, reference / "model.pt", marker)
    r = runner.invoke(app, ["decode", "--model", str(bad), "--data", str(run.corpus),
                            "--out", str(tmp_path / "dec"), "--no-progress"])  # fmt: skip
    assert not marker.exists()
    assert r.exit_code == 2, r.output
    assert f"error: {refusal(bad, kind)}" in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "dec" / "hyps_test.jsonl").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_decode_lm_refuses_a_malicious_file(tmp_path, reference, run, meaning_lm, kind):
    marker = tmp_path / "MARKER"
    bad = malicious(tmp_path / "lm.pt", kind, meaning_lm, marker)
    conf = tmp_path / "conf.yaml"
    conf.write_text(DECODE_YAML)
    args = ["decode", "--model", str(reference / "model.pt"), "--data", str(run.corpus),
            "--config", str(conf), "--no-progress"]  # fmt: skip
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "bad"), "--lm", f"meaning={bad}"])
    assert not marker.exists()
    assert r.exit_code == 2, r.output
    assert f"error: {refusal(bad, kind)}" in r.output
    # The same command with the intact LM decodes.
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "good"), "--lm", f"meaning={meaning_lm}"])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("kind", KINDS)
def test_resume_refuses_a_malicious_last_pt(tmp_path, run, stopped, kind):
    out = tmp_path / "do"
    shutil.copytree(stopped, out)
    marker = tmp_path / "MARKER"
    last = out / "checkpoints" / "last.pt"
    malicious(last, kind, stopped / "checkpoints" / "last.pt", marker)
    r = runner.invoke(app, ["train", "--data", str(run.corpus), "--out", str(out), "--config", str(run.yaml),
                            "--model", "do", "--no-progress"])  # fmt: skip
    assert not marker.exists()
    assert r.exit_code == 2, r.output
    assert f"error: {refusal(last, kind)}" in r.output
    assert not (out / "model.pt").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_averaging_refuses_a_malicious_epoch_checkpoint(tmp_path, run, reference, kind):
    """A finished run without ``model.pt``: restarting it only averages the kept
    epoch checkpoints, one of which is malicious."""
    out = tmp_path / "do"
    shutil.copytree(reference, out)
    (out / "model.pt").unlink()
    epochs = sorted((out / "checkpoints").glob("epoch*.pt"))
    assert len(epochs) == 2  # average_best: 2
    marker = tmp_path / "MARKER"
    malicious(epochs[0], kind, reference / "checkpoints" / epochs[0].name, marker)
    with pytest.raises(CheckpointError) as e:
        run(out)
    assert not marker.exists()
    assert str(e.value).startswith(refusal(epochs[0], kind))
    assert not (out / "model.pt").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_load_model_and_load_lm_refuse_a_malicious_file(tmp_path, reference, meaning_lm, kind):
    """``load_model`` is how analyze (and decode) read a model; ``load_lm`` how
    decode reads an LM."""
    marker = tmp_path / "MARKER"
    bad = malicious(tmp_path / "model.pt", kind, reference / "model.pt", marker)
    with pytest.raises(CheckpointError) as e:
        load_model(bad)
    assert not marker.exists()
    assert str(e.value).startswith(refusal(bad, kind))
    _, tokenizers = load_model(reference / "model.pt")
    bad_lm = malicious(tmp_path / "lm.pt", kind, meaning_lm, marker)
    with pytest.raises(LMError) as e:
        load_lm(bad_lm, tokenizers["meaning"])
    assert not marker.exists()
    assert str(e.value).startswith(refusal(bad_lm, kind))


# ------------------------------------------------------------------ checksums


def flip_weight_bytes(path: Path, n: int = 64) -> str:
    """Invert ``n`` bytes in the middle of the largest model weight's data in the
    zip that ``torch.save`` wrote (tensor records are stored uncompressed);
    returns the weight's name. Checks that only that weight changed, so the
    flip hit tensor bytes and not metadata."""
    before = torch.load(path, weights_only=True)["model"]
    name, weight = max(before.items(), key=lambda kv: kv[1].numel())
    raw = weight.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    with zipfile.ZipFile(path) as z:
        record = next(i for i in z.infolist() if "/data/" in i.filename and z.read(i) == raw)
    assert record.compress_type == zipfile.ZIP_STORED and record.file_size > 2 * n
    data = bytearray(path.read_bytes())
    # Local file header: 30 bytes, then the name and the extra field (lengths at 26 and 28).
    name_len, extra_len = struct.unpack_from("<HH", data, record.header_offset + 26)
    start = record.header_offset + 30 + name_len + extra_len + record.file_size // 2
    data[start : start + n] = bytes(b ^ 0xFF for b in data[start : start + n])
    path.write_bytes(bytes(data))
    after = torch.load(path, weights_only=True)["model"]  # torch itself does not notice
    assert [k for k in before if not torch.equal(before[k], after[k])] == [name]
    return name


def test_flipped_model_weights_are_refused_by_decode(tmp_path, reference, run):
    path = tmp_path / "model.pt"
    shutil.copy(reference / "model.pt", path)
    args = ["decode", "--model", str(path), "--data", str(run.corpus), "--no-progress"]
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "good")])
    assert r.exit_code == 0, r.output  # intact: decodes
    flip_weight_bytes(path)
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "bad")])
    assert r.exit_code == 2, r.output
    assert f"error: {path}: checksum mismatch: the weights are corrupt; not loaded" in r.output
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(path))}: checksum mismatch"):
        load_model(path)  # as analyze loads it


def test_flipped_last_pt_weights_are_refused_by_resume(tmp_path, run, stopped):
    out = tmp_path / "do"
    shutil.copytree(stopped, out)
    last = out / "checkpoints" / "last.pt"
    assert load_checkpoint(last)["epoch"] == 1  # intact: loads
    flip_weight_bytes(last)
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(last))}: checksum mismatch"):
        run(out)
    assert not (out / "model.pt").exists()


def test_averaging_verifies_every_input(tmp_path, reference):
    paths = []
    for p in sorted((reference / "checkpoints").glob("epoch*.pt")):
        shutil.copy(p, tmp_path / p.name)
        paths.append(tmp_path / p.name)
    average_checkpoints(paths)  # intact: averages
    flip_weight_bytes(paths[0])
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(paths[0]))}: checksum mismatch"):
        average_checkpoints(paths)


def test_a_checkpoint_without_checksum_is_refused(tmp_path, reference):
    ckpt = load_checkpoint(reference / "model.pt")
    ckpt.pop("checksum")
    path = tmp_path / "model.pt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(path))}: no checksum .*; not loaded"):
        load_model(path)


def test_every_checkpoint_a_run_writes_carries_its_checksum(reference, meaning_lm):
    files = [reference / "model.pt", reference / "checkpoints" / "last.pt",
             *(reference / "checkpoints").glob("epoch*.pt"), meaning_lm]  # fmt: skip
    for path in files:
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", torch.load(path, weights_only=True)["checksum"]), path


def test_checksum_covers_every_tensor_and_not_dict_order(tmp_path):
    state = {"model": {"a": torch.ones(2), "b": torch.arange(3)}, "rng": [torch.zeros(2, dtype=torch.uint8)],
             "model_config": {}}  # fmt: skip
    path = tmp_path / "c.pt"
    save_atomic(state, path)
    saved = torch.load(path, weights_only=True)
    reordered = {"model_config": {}, "rng": saved["rng"], "checksum": saved["checksum"],
                 "model": {"b": saved["model"]["b"], "a": saved["model"]["a"]}}  # fmt: skip
    torch.save(reordered, path)
    load_checkpoint(path)  # same tensors in another order: verified
    for change in ({"rng": [torch.ones(2, dtype=torch.uint8)]},  # a tensor outside the model
                   {"model": {**saved["model"], "b": saved["model"]["b"].to(torch.int32)}},  # a dtype
                   {"model": {**saved["model"], "a": torch.ones(2, 1)}}):  # a shape  # fmt: skip
        torch.save({**saved, **change}, path)
        with pytest.raises(CheckpointError, match="checksum mismatch"):
            load_checkpoint(path)


# ------------------------------------------------------------------ temporaries


def test_resume_removes_the_temporary_file_of_a_killed_checkpoint_write(tmp_path, run, stopped, caplog):
    out = tmp_path / "do"
    shutil.copytree(stopped, out)
    ckpt_dir = out / "checkpoints"
    stale = [ckpt_dir / ".last.pt.k1ll3d_x.tmp", out / ".model.pt.k1ll3d_y.tmp"]
    for p in stale:
        p.write_bytes(b"half a checkpoint")
    keep = [ckpt_dir / ".notes.txt.tmp", ckpt_dir / "epoch1.pt.tmp"]  # not atomic_path's names for *.pt
    for p in keep:
        p.write_text("not ours")
    caplog.set_level("INFO", logger="dualasr.train.trainer")
    run(out, stop_after_epoch=2)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in keep)
    assert "removed 2 temporary file(s) of an interrupted checkpoint write" in caplog.text
    assert "resumed" in caplog.text and load_checkpoint(ckpt_dir / "last.pt")["epoch"] == 2
    assert (ckpt_dir / "epoch1.pt").read_bytes() == (stopped / "checkpoints" / "epoch1.pt").read_bytes()
