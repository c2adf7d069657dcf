"""Package round trip and refusals; transcribe through the Python API and the CLI
on espeak-ng recordings of the tiny corpus."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet
from safetensors.torch import save_file
from typer.testing import CliRunner

from dualasr.cli import app
from dualasr.decode.search import decode_dual
from dualasr.learner.package import PackageError, load_package, package_run
from dualasr.learner.transcribe import AudioError, load_audio, transcribe


def test_package_decodes_as_the_run_did(do_package, do_run, tiny_corpus):
    pkg = load_package(do_package)
    assert (pkg.name, pkg.label, pkg.language, pkg.outputs) == ("do", "DO", "en", ("surface", "meaning"))
    assert set(pkg.provenance["test_cer"]["test"]) == {"surface", "meaning"}
    assert pkg.provenance["synthetic"] and "espeak-ng" in pkg.provenance["engines"]
    assert "synthetic voices only" in pkg.provenance["note"]
    assert pkg.provenance["train_utterances"] == 24
    saved = [json.loads(line) for line in (do_run / "hyps_test.jsonl").read_text().splitlines()]
    cuts = {c.id: c for c in CutSet.from_file(tiny_corpus / "fbank" / "test.jsonl.gz")}
    for row in saved:
        feats = torch.from_numpy(cuts[row["id"]].load_features())[None]
        hyps = decode_dual(pkg.model, feats, torch.tensor([feats.size(1)]), beam=pkg.decode["beam"],
                           ctc_weight=pkg.decode["ctc_weight"])  # fmt: skip
        for o in pkg.outputs:
            assert pkg.tokenizers[o].decode(hyps[o][0].tokens) == row[o]


def test_tampered_truncated_foreign_and_other_versions_are_refused(do_package, do_run, tmp_path):
    data = do_package.read_bytes()
    tampered = tmp_path / "tampered.dualasr"
    tampered.write_bytes(data[:-10] + bytes(b ^ 0xFF for b in data[-10:]))
    with pytest.raises(PackageError, match=f"{tampered}: checksum mismatch"):
        load_package(tampered)
    truncated = tmp_path / "truncated.dualasr"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(PackageError, match=f"{truncated}: truncated package"):
        load_package(truncated)
    foreign = tmp_path / "model.dualasr"
    foreign.write_bytes((do_run / "model.pt").read_bytes())
    with pytest.raises(PackageError, match=f"{foreign}: not a dualasr package"):
        load_package(foreign)
    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, other, metadata={"dualasr": json.dumps({"format": "dualasr-package", "format_version": 99})})
    with pytest.raises(PackageError, match=f"{other}: package format version 99"):
        load_package(other)


class RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_a_command_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran"
    for path in (tmp_path / "evil.dualasr", tmp_path / "evil.pt"):
        path.write_bytes(pickle.dumps({"model": RunsCommand(marker)}))
        with pytest.raises(PackageError, match="not a dualasr package"):
            load_package(path)
    torch.save({"model": RunsCommand(marker)}, tmp_path / "evil_zip.dualasr")
    with pytest.raises(PackageError, match="not a dualasr package"):
        load_package(tmp_path / "evil_zip.dualasr")
    assert not marker.exists()


def test_transcribe_gives_both_outputs_timed_and_diffed(do_package, tiny_corpus):
    pkg = load_package(do_package)
    wav = tiny_corpus / "audio" / "test01.wav"
    d = transcribe(pkg, str(wav)).to_dict()
    assert d["version"] == 1 and d["audio"]["sample_rate"] == 16000
    assert d["audio"]["duration"] == pytest.approx(sf.info(wav).duration, abs=1e-3)
    assert d["model"]["trained_on"]["synthetic"] and d["model"]["label"] == "DO"
    assert d["meaning"]["source"] == "model" and isinstance(d["surface"]["text"], str)
    assert [w["Word"] for w in d["surface"]["words"]] == d["surface"]["text"].split()
    end = d["audio"]["duration"] * 1e7
    for w in d["surface"]["words"]:
        assert 0 <= w["Offset"] and w["Offset"] + w["Duration"] <= end + 4e5 and 0 <= w["Confidence"] <= 1
    assert sorted(d["diff"][0]) == sorted(["ErrorType", "Expected", "Heard", "Offset", "Duration",
                                          "AccuracyScore", "Confidence", "chars"])  # fmt: skip
    assert {x["ErrorType"] for x in d["diff"]} <= {"None", "Omission", "Insertion", "Mispronunciation"}
    # A two-epoch model is unsure of everything: not presented as feedback.
    assert d["reliable"] is False and any("low confidence" in w for w in d["warnings"])
    assert any("synthetic voices only" in w for w in d["warnings"])


def test_given_text_replaces_the_meaning_and_is_diffed(do_package, tiny_corpus):
    pkg = load_package(do_package)
    d = transcribe(pkg, str(tiny_corpus / "audio" / "test01.wav"), text="Hello, THERE world!").to_dict()
    assert d["meaning"] == {"text": "hello there world", "source": "user", "words": d["meaning"]["words"]}
    assert [w["Word"] for w in d["meaning"]["words"]] == ["hello", "there", "world"]
    assert [x["Expected"] for x in d["diff"] if x["Expected"]] == ["hello", "there", "world"]
    assert [x["Heard"] for x in d["diff"] if x["Heard"]] == d["surface"]["text"].split()


def test_audio_of_any_rate_and_channels_and_bad_audio(tiny_corpus, tmp_path):
    audio, rate = sf.read(tiny_corpus / "audio" / "test01.wav", dtype="float32")
    stereo8k = tmp_path / "stereo8k.flac"
    sf.write(stereo8k, np.stack([audio[::2], audio[::2]], axis=1), 8000)
    x, seconds = load_audio(stereo8k)
    assert x.ndim == 1 and x.dtype == np.float32 and seconds == pytest.approx(len(audio) / rate, abs=1e-3)
    assert load_audio(stereo8k.read_bytes())[1] == pytest.approx(seconds)
    (tmp_path / "notes.txt").write_text("not audio")
    with pytest.raises(AudioError, match="notes.txt: not audio"):
        load_audio(tmp_path / "notes.txt")
    with pytest.raises(AudioError, match="empty"):
        load_audio(b"")
    wav = (tiny_corpus / "audio" / "test01.wav").read_bytes()
    with pytest.raises(AudioError, match="truncated WAV"):
        load_audio(wav[: len(wav) // 2])


def test_cli_package_and_transcribe_many_files_one_bad(do_run, tiny_corpus, tmp_path):
    runner = CliRunner()
    pkg = tmp_path / "en-do.dualasr"
    r = runner.invoke(app, ["package", str(do_run), str(pkg)])
    assert r.exit_code == 0, r.output
    good = [str(tiny_corpus / "audio" / f"test0{i}.wav") for i in (0, 2)]
    bad = tmp_path / "bad.wav"
    bad.write_text("nope")
    r = runner.invoke(app, ["transcribe", str(pkg), good[0], str(bad), good[1], "--format", "json", "--no-progress"])
    assert r.exit_code == 2
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [d["audio"]["file"] for d in lines] == good
    assert f"error: {bad}: not audio" in r.stderr
    r = runner.invoke(app, ["transcribe", str(pkg), good[0], "--format", "csv", "--text", "a b c"])
    assert r.exit_code == 0 and r.stdout.splitlines()[0].startswith("file,ErrorType,Expected,Heard,Offset")
    assert len(r.stdout.splitlines()) >= 4  # three meaning words, at least one row each
    r = runner.invoke(app, ["transcribe", str(pkg), good[0]])
    assert r.exit_code == 0 and "synthetic voices only" in r.stdout and "NOT RELIABLE" in r.stdout
    r = runner.invoke(app, ["transcribe", str(tmp_path / "missing.dualasr"), good[0]])
    assert r.exit_code == 2 and "missing.dualasr: no such package" in r.stderr


def test_a_run_decoded_on_named_test_splits_packages_its_settings_and_each_splits_cer(do_run, tmp_path):
    """A study with test_seen / test_unseen writes decode_<split>.json and
    <kind>_<output>_<split>.trn per split: the package takes the decoding
    settings from them and reports the CER of each split."""
    run = tmp_path / "run"
    shutil.copytree(do_run, run)
    decoded = json.loads((run / "decode_test.json").read_text())
    for split in ("test_seen", "test_unseen"):
        shutil.copy(run / "decode_test.json", run / f"decode_{split}.json")
        for f in run.glob("*_test.trn"):
            shutil.copy(f, run / f.name.replace("_test.trn", f"_{split}.trn"))
    for f in [run / "decode_test.json", *run.glob("*_test.trn")]:
        f.unlink()
    pkg = load_package(package_run(run, tmp_path / "p.dualasr"))
    assert set(pkg.provenance["test_cer"]) == {"test_seen", "test_unseen"}
    assert pkg.provenance["test_cer"]["test_seen"] == pkg.provenance["test_cer"]["test_unseen"]
    assert set(pkg.provenance["test_cer"]["test_seen"]) == {"surface", "meaning"}
    assert pkg.decode["beam"] == decoded["beam"] and pkg.decode["ctc_weight"] == decoded["ctc_weight"]
