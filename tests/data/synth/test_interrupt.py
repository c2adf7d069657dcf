"""An interrupted synthesis leaves no temporary ``dualasr-synth-*`` directory,
even when its worker processes are killed mid-utterance."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time

import pytest

from dualasr.config import Config, SynthConfig
from dualasr.data.synth.corpus import build_corpus


def test_interrupted_parallel_synthesis_leaves_no_temporary_dirs(tmp_path, monkeypatch):
    # An espeak-ng that reports its data directory but takes 10 s to speak:
    # the workers are inside their temporary directories when the build stops.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    slow = bin_dir / "espeak-ng"
    slow.write_text(f'#!/bin/sh\nif [ "$1" = --version ]; then exec {shutil.which("espeak-ng")} "$@"; fi\nexec {shutil.which("sleep")} 10\n')
    slow.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # the spawned workers' temporary directory
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    heldout = {"en": {"dev": ["espeak-en-gb-m1"], "test": ["espeak-en-us-f1"]}}
    cfg = Config(seed=3, synth=SynthConfig(languages=["en"], sentences={"train": 6, "dev": 2, "test": 2},
                                           heldout_voices=heldout, workers=2))  # fmt: skip

    def ctrl_c_once_synthesizing():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(scratch.rglob("dualasr-synth-*")):
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C, but the workers only see the pool stop them

    # A shell without job control starts background commands with SIGINT ignored;
    # Ctrl-C's Python handler is what this test needs, however pytest was launched.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=ctrl_c_once_synthesizing, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            build_corpus(cfg, tmp_path / "corpus", allow_fewer_voices=True, progress=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert list(scratch.glob("dualasr-synth-*")) == []
