"""The study's model jobs: order, named variants, several at once in worker
processes giving the same models as one after another, `dualasr train` giving
the study's model, reuse only for the same inputs, and an interrupt that
starts no new job."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from typer.testing import CliRunner

from dualasr import study
from dualasr.cli import app
from dualasr.config import Config, load_config, model_config
from dualasr.layout import read_run_info
from dualasr.model.checkpoint import load_checkpoint
from dualasr.rundir import StaleOutputError
from dualasr.study import (
    LMJob,
    ModelJob,
    lm_jobs,
    model_jobs,
    run_lm_job,
    run_model_job,
    run_model_jobs,
    study_jobs,
    usable_cores,
)

CONFIG = {
    "model": {
        "d_model": 32,
        "subsampling_channels": 16,
        "encoder": {"layers": 1, "heads": 2, "ffn_dim": 64, "kernel": 5, "dropout": 0.0, "attn_dropout": 0.0},
        "decoder": {"layers": 1, "heads": 2, "ffn_dim": 64, "dropout": 0.0, "attn_dropout": 0.0},
        "specaug": {"enabled": False},
    },
    "train": {"epochs": 1, "max_duration": 6, "num_buckets": 2, "warmup_steps": 2, "average_best": 1},
    "decode": {"beam": 1},
    "study": {"models": ["sso", "do"], "jobs": 2},
}


def weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def test_jobs_cover_every_model_longest_first(tmp_path, tiny_corpus):
    cfg = Config(**{**CONFIG, "study": {"models": ["sso", "mso", "do"], "seeds": [0, 1]}})
    jobs = model_jobs(cfg, tmp_path, {"en": tiny_corpus / "fbank"}, {"en": 100.0})
    assert {(j.name, j.seed) for j in jobs} == {(m, s) for m in ("sso", "mso", "do") for s in (0, 1)}
    assert [j.name for j in jobs[:2]] == ["do", "do"]  # two decoders: the longest
    assert jobs[0].exp == tmp_path / "exp" / "en" / "do" / f"seed{jobs[0].seed}"
    # Same audio, three times the epochs: the Korean models are the longer jobs.
    cfg = Config(**{**CONFIG, "study": {"models": ["sso", "do"], "epochs": {"ko": 3}}})
    jobs = model_jobs(cfg, tmp_path, {"en": tiny_corpus / "fbank", "ko": tiny_corpus / "fbank"}, {"en": 100.0, "ko": 100.0})
    assert [j.label for j in jobs] == ["ko/do/seed0", "ko/sso/seed0", "en/do/seed0", "en/sso/seed0"]
    # Same epochs, more audio: English first.
    cfg = Config(**{**CONFIG, "study": {"models": ["sso", "do"]}})
    jobs = model_jobs(cfg, tmp_path, {"en": tiny_corpus / "fbank", "ko": tiny_corpus / "fbank"}, {"en": 200.0, "ko": 100.0})
    assert [j.label for j in jobs] == ["en/do/seed0", "en/sso/seed0", "ko/do/seed0", "ko/sso/seed0"]


@pytest.mark.slow
def test_parallel_jobs_give_the_models_of_one_after_another(tmp_path, tiny_corpus):
    cfg = Config(**CONFIG)
    fbanks = {"en": tiny_corpus / "fbank"}
    parallel = model_jobs(cfg, tmp_path / "parallel", fbanks, {"en": 100.0})
    lines: list[str] = []
    run_model_jobs(parallel, cfg, progress=False, echo=lines.append)
    started = re.fullmatch(r"training 2 models, 2 at a time \((\d+) thread\(s\) each\)", lines[0])
    assert started, lines[0]
    assert sorted(line.split(":")[0] for line in lines[1:]) == ["en/do/seed0", "en/sso/seed0"]
    # They ran at the same time: each started (wrote its vocabulary) before the
    # other finished (wrote its hypotheses); one after another, one would not.
    first = [(j.exp / "tokens_surface.json").stat().st_mtime_ns for j in parallel]
    last = [(j.exp / "hyps_test.jsonl").stat().st_mtime_ns for j in parallel]
    assert max(first) < min(last)
    # The same jobs in this process, one thread as each worker had: the same weights.
    threads = torch.get_num_threads()
    torch.set_num_threads(int(started.group(1)))
    try:
        for job in model_jobs(cfg, tmp_path / "serial", fbanks, {"en": 100.0}):
            run_model_job(job, cfg, progress=False)
    finally:
        torch.set_num_threads(threads)
    for job in parallel:
        serial = tmp_path / "serial" / job.exp.relative_to(tmp_path / "parallel")
        assert (job.exp / "hyps_test.jsonl").read_text() == (serial / "hyps_test.jsonl").read_text()
        a, b = weights(job.exp / "model.pt"), weights(serial / "model.pt")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_failing_job_stops_the_study_and_is_named(tmp_path, tiny_corpus):
    cfg = Config(**CONFIG)
    broken = tmp_path / "no_features"
    broken.mkdir()
    # Two run directories: one run directory takes one job at a time.
    jobs = [ModelJob("en", s, "sso", broken, tmp_path / "exp" / "en" / "sso" / f"seed{s}") for s in (0, 1)]
    with pytest.raises(FileNotFoundError) as err:
        run_model_jobs(jobs, cfg, progress=False, echo=lambda s: None)
    assert "cmvn.json" in str(err.value)
    assert any(re.search(r"in study job en/sso/seed[01] ", note) for note in err.value.__notes__)


def test_study_epochs_per_language_override_train_epochs(tmp_path, tiny_corpus):
    cfg = Config(**{**CONFIG, "study": {"models": ["sso"], "epochs": {"en": 2, "ko": 5}}})
    assert cfg.train.epochs == 1
    (job,) = model_jobs(cfg, tmp_path, {"en": tiny_corpus / "fbank"}, {"en": 100.0})
    run_model_job(job, cfg, progress=False)
    assert json.loads((job.exp / "train_summary.json").read_text())["epochs"] == 2
    with pytest.raises(ValueError, match=r"study.epochs.en\s+Input should be greater than or equal to 1"):
        Config(**{**CONFIG, "study": {"epochs": {"en": 0}}})


def test_a_finished_job_is_skipped_and_one_of_other_inputs_refused(tmp_path, tiny_corpus):
    cfg = Config(**{**CONFIG, "study": {"models": ["sso"]}})
    (job,) = model_jobs(cfg, tmp_path, {"en": tiny_corpus / "fbank"}, {"en": 100.0})
    assert run_model_job(job, cfg, progress=False).startswith("en/sso/seed0: trained and decoded in ")
    assert run_model_job(job, cfg, progress=False) == f"en/sso/seed0: already trained and decoded, skipped ({job.exp})"
    other = cfg.model_copy(update={"train": cfg.train.model_copy(update={"lr": 0.002})})
    with pytest.raises(StaleOutputError, match=r"model.pt was made from other data/config \(train \(lr\)\)") as err:
        run_model_job(job, other, progress=False)
    assert f"in study job en/sso/seed0 ({job.exp})" in err.value.__notes__


def test_a_finished_lm_job_is_skipped_and_one_of_other_inputs_refused(tmp_path, tiny_corpus):
    cfg = Config(**CONFIG, lm={"embed": 8, "hidden": 16, "epochs": 1})
    job = LMJob("en", "meaning", tiny_corpus / "fbank", tmp_path / "lm" / "en" / "meaning")
    assert run_lm_job(job, cfg, progress=False).startswith("en/lm-meaning: trained in ")
    assert run_lm_job(job, cfg, progress=False) == f"en/lm-meaning: already trained, skipped ({job.exp})"
    other = cfg.model_copy(update={"lm": cfg.lm.model_copy(update={"epochs": 2})})
    with pytest.raises(StaleOutputError, match=r"lm.pt was made from other data/config \(lm \(epochs\)\)"):
        run_lm_job(job, other, progress=False)


# A study whose jobs only note their start and sleep: run_model_jobs with the
# job function swapped in the study process (workers import it by name).
SLEEPY_JOB = """
import os, time

def sleepy(job, config, progress, threads):
    with open(os.environ["STARTS"], "a") as f:
        f.write(job.label + "\\n")
    time.sleep(60)
    return job.label
"""

STUDY = """
import signal
import sys
from pathlib import Path

import sleepy_job
from dualasr import study
from dualasr.config import Config

if __name__ == "__main__":  # not in the spawned workers
    # Ctrl-C's handler even when pytest runs as a background command of a shell
    # without job control, which starts it (and so this process) with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    study._runner = lambda job: sleepy_job.sleepy
    out = Path(sys.argv[1])
    jobs = [study.ModelJob("en", s, "sso", out, out / f"seed{s}") for s in range(5)]
    study.run_model_jobs(jobs, Config(study={"jobs": 2}), progress=False, echo=print)
"""


def test_a_worker_interrupt_takes_no_lock(monkeypatch):
    """The worker's SIGINT handler must not touch the shared stop flag: its
    set() takes a lock that is_set() may hold when the signal lands
    (deadlock). Between jobs it only marks the worker, whose next job then
    does not start."""

    class Held:  # the shared flag with its lock held by the interrupted code
        def set(self):
            raise AssertionError("the handler took the shared flag's lock")

        def is_set(self):
            return False

    monkeypatch.setattr(study, "_stop", Held())
    monkeypatch.setattr(study, "_interrupted_here", False)
    monkeypatch.setattr(study, "_running", False)
    study._interrupted(signal.SIGINT, None)  # between jobs: no KeyboardInterrupt
    assert study._run_queued(lambda job: pytest.fail("a job started after Ctrl-C"), "job") is None


@pytest.mark.parametrize("to", ["terminal", "study process"])
def test_an_interrupted_study_starts_no_new_job(tmp_path, to):
    (tmp_path / "sleepy_job.py").write_text(SLEEPY_JOB)
    (tmp_path / "interrupted_study.py").write_text(STUDY)
    starts = tmp_path / "starts"
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "interrupted_study.py"), str(tmp_path)], env={**os.environ, "STARTS": str(starts)},
        start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (starts.exists() and len(starts.read_text().splitlines()) == 2):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.1)
        sent = time.monotonic()
        if to == "terminal":  # Ctrl-C: SIGINT to the study and its workers
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)  # the jobs would sleep 60 s
        assert time.monotonic() - sent < 20
        assert proc.returncode != 0
        time.sleep(1)  # time for a worker left behind to start a job
        assert len(starts.read_text().splitlines()) == 2
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()


#: Two variants besides the reference ones: task-specific encoder layers and
#: other loss weights, a display label and a train override.
VARIANTS = {
    "sso": {},
    "do_w": {
        "mode": "do", "label": "DO (w)", "weights": {"ctc_surface": 0.3, "att_surface": 0.4, "att_meaning": 0.3},
        "model": {"encoder": {"task_specific_layers": 1}}, "train": {"lr": 0.002},
    },
}  # fmt: skip


def test_jobs_and_language_models_of_named_variants(tmp_path, tiny_corpus):
    fbanks = {"en": tiny_corpus / "fbank"}
    models = {"sso": {}, "split": {"mode": "do", "model": {"encoder": {"task_specific_layers": 1}}}}
    cfg = Config(**{**CONFIG, "study": {"models": models}})
    # Dual-output variants (two decoders) first, whatever their name.
    assert [j.label for j in model_jobs(cfg, tmp_path, fbanks, {"en": 100.0})] == ["en/split/seed0", "en/sso/seed0"]
    # A meaning LM is trained only when some variant has a meaning output.
    decode = {"beam": 1, "lm_weight": {"meaning": 0.3}}
    assert [j.label for j in lm_jobs(Config(**{**CONFIG, "decode": decode, "study": {"models": models}}), tmp_path, fbanks)] == ["en/lm-meaning"]
    surface_only = {"sso": {}, "sso_long": {"mode": "sso", "train": {"epochs": 2}}}
    assert lm_jobs(Config(**{**CONFIG, "decode": decode, "study": {"models": surface_only}}), tmp_path, fbanks) == []


def test_cli_train_equals_the_study_model(tmp_path, tiny_corpus):
    """`dualasr train --model NAME --seed S` trains the study's variant NAME of
    study seed S bit for bit, and both write the same identity."""
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**CONFIG, "study": {"models": VARIANTS, "seeds": [1]}}, sort_keys=False))
    cfg = load_config(tmp_path / "c.yaml")
    (job,) = [j for j in model_jobs(cfg, tmp_path / "study", {"en": tiny_corpus / "fbank"}, {"en": 100.0}) if j.name == "do_w"]
    run_model_job(job, cfg, progress=False)
    out = tmp_path / "by_hand"
    args = ["train", "--data", str(tiny_corpus), "--out", str(out), "--config", str(tmp_path / "c.yaml"),
            "--model", "do_w", "--seed", "1", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    a, b = weights(job.exp / "model.pt"), weights(out / "model.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    info = read_run_info(out)
    assert info == read_run_info(job.exp)
    assert (info.name, info.label, info.mode, info.outputs, info.language, info.seed) == (
        "do_w", "DO (w)", "do", ("surface", "meaning"), "en", 1)  # fmt: skip
    ckpt = load_checkpoint(out / "model.pt")
    assert (ckpt["name"], ckpt["label"]) == ("do_w", "DO (w)")
    assert info.model_config == ckpt["model_config"] == model_config(cfg, "do_w").model_dump()
    assert ckpt["model_config"]["encoder"]["task_specific_layers"] == 1 and ckpt["train_config"]["lr"] == 0.002


def test_cli_train_refuses_a_name_the_config_lacks(tmp_path, tiny_corpus):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**CONFIG, "study": {"models": VARIANTS}}, sort_keys=False))
    args = ["train", "--data", str(tiny_corpus), "--out", str(tmp_path / "x"), "--config", str(tmp_path / "c.yaml"),
            "--model", "mso", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert f"error: {tmp_path / 'c.yaml'}: study.models has no variant 'mso' (variants: sso, do_w)" in result.output
    assert not (tmp_path / "x").exists()


def test_auto_jobs_follow_the_usable_cores():
    assert study_jobs("auto") == usable_cores() >= 1
    assert study_jobs(3) == 3
    assert Config.model_validate({"study": {"jobs": "auto"}}).study.jobs == "auto"
