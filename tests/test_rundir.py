"""Run directories: outputs reused only for the inputs they were made from, and
one writer at a time (real processes, a real SIGKILL)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dualasr.data.manifest import cuts_from_utterances, write_manifest
from dualasr.rundir import (
    RunDirBusy,
    StaleOutputError,
    fingerprint_path,
    locked,
    manifest_stamp,
    reuse_or_recompute,
    reuse_or_refuse,
)
from tests.conftest import write_tone

DO = {"train_manifest": {"utterances": 3, "content": "a", "files": "f"}, "model": {"mode": "do", "d_model": 32}, "seed": 0}
SSO = {**DO, "train_manifest": {**DO["train_manifest"], "content": "b"}, "model": {"mode": "sso", "d_model": 32}}


def test_a_model_of_other_inputs_is_refused_naming_dir_and_what_differs(tmp_path):
    model = tmp_path / "exp" / "model.pt"
    assert reuse_or_refuse(model, DO) is False  # nothing there: train, inputs recorded first
    model.write_bytes(b"weights")
    assert reuse_or_refuse(model, DO) is True
    with pytest.raises(StaleOutputError) as err:
        reuse_or_refuse(model, SSO)
    assert str(err.value) == (
        f"{tmp_path / 'exp'}: model.pt was made from other data/config "
        "(model (mode), train_manifest (content)); use a new --out or delete it"
    )
    assert model.read_bytes() == b"weights" and reuse_or_refuse(model, DO) is True


def test_a_checkpoint_of_other_inputs_is_not_resumed(tmp_path):
    model, last = tmp_path / "model.pt", tmp_path / "checkpoints" / "last.pt"
    reuse_or_refuse(model, DO)
    last.parent.mkdir()
    last.write_bytes(b"epoch 1")
    assert reuse_or_refuse(model, DO, partial=[last]) is False  # same inputs: resume
    with pytest.raises(StaleOutputError, match=r"last.pt was made from other data/config \(model \(mode\)"):
        reuse_or_refuse(model, {**DO, "model": SSO["model"]}, partial=[last])


def test_an_output_without_a_record_is_never_reused(tmp_path):
    model, hyps = tmp_path / "model.pt", tmp_path / "hyps_test.jsonl"
    model.write_bytes(b"weights")
    with pytest.raises(StaleOutputError, match="no record of its inputs"):
        reuse_or_refuse(model, DO)
    hyps.write_text("old\n")
    assert reuse_or_recompute(hyps, DO) is False and not hyps.exists()


def test_a_derived_output_of_other_inputs_is_deleted_before_its_new_record(tmp_path, caplog):
    hyps = tmp_path / "hyps_test.jsonl"
    assert reuse_or_recompute(hyps, DO) is False
    hyps.write_text("from DO\n")
    assert reuse_or_recompute(hyps, DO) is True
    with caplog.at_level("INFO"):
        assert reuse_or_recompute(hyps, SSO) is False
    assert "inputs changed since it was made (model (mode), train_manifest (content)); recomputing" in caplog.text
    # The new record is written, the old output is gone: a kill before the new
    # output leaves nothing that looks current.
    assert not hyps.exists()
    assert fingerprint_path(hyps).exists() and reuse_or_recompute(hyps, SSO) is False


def test_manifest_stamp_follows_content_and_audio_files(tmp_path, utterances):
    path = tmp_path / "cuts.jsonl.gz"
    write_manifest(cuts_from_utterances(utterances), path)
    first = manifest_stamp(path)
    assert first["utterances"] == len(utterances)
    write_manifest(cuts_from_utterances(utterances), path, overwrite=True)
    assert manifest_stamp(path) == first  # rewritten, same cuts and audio
    _, utt = utterances[0]
    st = os.stat(utt.audio)
    write_tone(Path(utt.audio), 0.4, freq=440.0)  # same length, other sound
    os.utime(utt.audio, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    changed = manifest_stamp(path)
    assert changed["content"] == first["content"] and changed["files"] != first["files"]


# ------------------------------------------------------------------------- lock

HOLD = """
import sys, time
from dualasr.rundir import locked
with locked(sys.argv[1]):
    print("holding", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path):
    """A real process holding ``tmp_path / "run"``; killed with SIGKILL at the end."""
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "holding\n"
    yield run_dir, proc
    proc.kill()
    proc.wait()


def _dualasr(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dualasr.cli", *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, **env},
    )  # fmt: skip


@pytest.mark.parametrize("command", ["train", "study"])
def test_a_second_writer_exits_2_naming_the_holder(holder, tmp_path, command):
    run_dir, proc = holder
    config = tmp_path / "c.yaml"
    config.write_text("seed: 0\n")
    extra = ["--data", str(tmp_path / "corpus")] if command == "train" else []
    r = _dualasr(command, "--config", str(config), "--out", str(run_dir), *extra)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"error: {run_dir}: in use by pid {proc.pid} on {socket.gethostname()} since ")
    assert f"(-c {run_dir}); wait for it to finish or use another --out" in r.stderr  # its command line
    assert r.stderr.count("\n") == 1
    assert not (run_dir / "data").exists()  # the study did not start


def test_the_lock_is_free_once_its_holder_is_killed(holder):
    run_dir, proc = holder
    with pytest.raises(RunDirBusy, match=f"in use by pid {proc.pid} "):
        with locked(run_dir):
            pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with locked(run_dir):  # no stale lock left behind
        pass


def test_torchrun_ranks_other_than_0_do_not_lock(holder, tmp_path):
    run_dir, _ = holder
    config = tmp_path / "c.yaml"
    config.write_text("seed: 0\n")
    args = ["train", "--config", str(config), "--out", str(run_dir), "--data", str(tmp_path / "corpus")]
    assert "in use" in _dualasr(*args).stderr
    r = _dualasr(*args, RANK="1")
    assert "in use" not in r.stderr and "corpus" in r.stderr  # got past the lock, to the missing corpus
