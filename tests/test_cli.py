"""The CLI is thin: it parses, calls the library and reports bad input as one line."""

import errno
import gzip
import os

from lhotse import CutSet
from typer.testing import CliRunner

from dualasr.cli import app
from dualasr.data import manifest as m

runner = CliRunner()


def test_prepare_export_stats(tmp_path, utterances):
    m.export_jsonl(m.cuts_from_utterances(utterances), tmp_path / "in.jsonl")
    data = tmp_path / "data"
    r = runner.invoke(app, ["prepare", "jsonl", str(tmp_path / "in.jsonl"), str(data)])
    assert r.exit_code == 0, r.output
    assert "jsonl: 5 of 5 utterances kept" in r.output
    r = runner.invoke(app, ["prepare", "jsonl", str(tmp_path / "in.jsonl"), str(data)])
    assert r.exit_code == 2 and "refusing to overwrite" in r.output
    r = runner.invoke(app, ["stats", str(data)])
    assert r.exit_code == 0 and "| en | 3 | 3 |" in r.output and "| ko | 2 | 2 |" in r.output
    r = runner.invoke(app, ["export", "kaldi", str(data / "cuts_train.jsonl.gz"), str(tmp_path / "kaldi")])
    assert r.exit_code == 0 and (tmp_path / "kaldi" / "text.surface").read_text().startswith("en1 i sink so")


def test_import_names_its_replacement(tmp_path):
    r = runner.invoke(app, ["import", "kaldi", str(tmp_path), str(tmp_path / "cuts_train.jsonl.gz"), "--language", "ko"])
    _one_error_line(r, "`dualasr import` is now `dualasr prepare jsonl|csv|kaldi SOURCE OUT_DIR`")


def test_skip_invalid_reports_count_and_file(tmp_path, utterances):
    utterances[2][1].meaning = ""
    m.export_jsonl(m.cuts_from_utterances(utterances[:2]), tmp_path / "ok.jsonl")
    lines = (tmp_path / "ok.jsonl").read_text()
    bad = '{"id": "z", "audio": "missing.wav", "language": "en", "speaker": "s", "surface": "a", "meaning": "a"}\n'
    (tmp_path / "in.jsonl").write_text(lines + bad)
    out = tmp_path / "out"
    r = runner.invoke(app, ["prepare", "jsonl", str(tmp_path / "in.jsonl"), str(out)])
    assert r.exit_code == 2 and "in.jsonl:3" in r.output and "missing or unreadable audio" in r.output
    assert not out.exists()
    r = runner.invoke(app, ["prepare", "jsonl", str(tmp_path / "in.jsonl"), str(out), "--skip-invalid"])
    assert r.exit_code == 0 and "skipped 1" in r.output
    skipped = (out / "skipped.tsv").read_text().splitlines()
    assert len(skipped) == 2 and skipped[1].startswith("z\t")


def test_bad_config_is_one_line(tmp_path):
    (tmp_path / "c.yaml").write_text("synth:\n  nope: 1\n")
    r = runner.invoke(app, ["study", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "c.yaml: synth.nope: Extra inputs are not permitted" in r.output


def _one_error_line(r, *parts: str) -> str:
    """The CLI's answer to bad input: exit 2 and one line `error: ...` holding ``parts``."""
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error: ") and r.output.count("\n") == 1, r.output
    assert all(p in r.output for p in parts), r.output
    return r.output


def test_export_kaldi_refuses_before_writing_anything(tmp_path, utterances):
    manifest = m.write_manifest(m.cuts_from_utterances(utterances), tmp_path / "cuts_test.jsonl.gz")
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "utt2lang").write_text("old\n")  # the fifth file export_kaldi writes
    r = runner.invoke(app, ["export", "kaldi", str(manifest), str(tmp_path / "k")])
    _one_error_line(r, "k: holds utt2lang; refusing to overwrite (pass --overwrite)")
    assert [p.name for p in (tmp_path / "k").iterdir()] == ["utt2lang"]


def test_prepare_bad_source_is_one_line_and_writes_nothing(tmp_path, utterances):
    m.export_jsonl(m.cuts_from_utterances(utterances), tmp_path / "in.jsonl")
    data = gzip.compress((tmp_path / "in.jsonl").read_bytes())
    (tmp_path / "in.jsonl.gz").write_bytes(data[:-20])
    out = tmp_path / "o"
    cases = [
        (["jsonl", "in.jsonl.gz"], "in.jsonl.gz: cannot read after line 4 (Compressed file ended"),
        (["jsonl", "nope.jsonl"], "nope.jsonl: not a jsonl input and holds none of train.jsonl"),
        (["csv", "."], ": not a csv input and holds none of train.csv, dev.csv, test.csv"),
        (["kaldi", "in.jsonl"], "in.jsonl: not a kaldi input and holds none of train, dev, test"),
    ]  # fmt: skip
    for args, message in cases:
        args[1] = str(tmp_path / args[1])
        r = runner.invoke(app, ["prepare", *args, str(out)])
        assert "Aborted" not in r.output
        _one_error_line(r, message)
    assert not out.exists()


def test_prepare_into_a_full_disk_is_one_line(tmp_path, utterances, monkeypatch):
    m.export_jsonl(m.cuts_from_utterances(utterances), tmp_path / "in.jsonl")

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(CutSet, "to_file", full)
    out = tmp_path / "o"
    r = runner.invoke(app, ["prepare", "jsonl", str(tmp_path / "in.jsonl"), str(out)])
    _one_error_line(r, "cuts_train.jsonl.gz: cannot write (No space left on device)")
    assert not out.exists() or list(out.iterdir()) == []


def test_skip_invalid_leaving_nothing_is_an_error_with_the_reasons(tmp_path):
    bad = '{"id": "z", "audio": "missing.wav", "language": "en", "speaker": "s", "surface": "a", "meaning": "a"}\n'
    (tmp_path / "in.jsonl").write_text(bad + bad.replace('"z"', '"y"'))
    out = tmp_path / "o"
    r = runner.invoke(app, ["prepare", "jsonl", str(tmp_path / "in.jsonl"), str(out), "--skip-invalid"])
    _one_error_line(r, "jsonl: no usable utterance (2 found, 2 skipped, reasons in ",
                    "skipped.tsv); no manifest written")  # fmt: skip
    assert not list(out.glob("cuts_*"))
    assert len((out / "skipped.tsv").read_text().splitlines()) == 3


def test_reprepare_leaves_no_stale_skipped_list(tmp_path, utterances):
    m.export_jsonl(m.cuts_from_utterances(utterances), tmp_path / "in.jsonl")
    good = (tmp_path / "in.jsonl").read_text()
    bad = '{"id": "z", "audio": "missing.wav", "language": "en", "speaker": "s", "surface": "a", "meaning": "a"}\n'
    (tmp_path / "in.jsonl").write_text(good + bad)
    listed = tmp_path / "o" / "skipped.tsv"
    args = ["prepare", "jsonl", str(tmp_path / "in.jsonl"), str(tmp_path / "o"), "--skip-invalid", "--overwrite"]
    assert runner.invoke(app, args).exit_code == 0 and listed.read_text().splitlines()[1].startswith("z\t")
    (tmp_path / "in.jsonl").write_text(good)  # the corpus was mended
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and "5 of 5 utterances kept" in r.output and "skipped" not in r.output
    assert not listed.exists()


def test_stats_refuses_a_nan_duration(tmp_path, utterances):
    path = m.write_manifest(m.cuts_from_utterances(utterances), tmp_path / "cuts_train.jsonl.gz")
    text = gzip.open(path, "rt").read().replace('"duration": 0.4,', '"duration": NaN,', 1)
    with gzip.open(path, "wt") as f:
        f.write(text)
    r = runner.invoke(app, ["stats", str(tmp_path)])
    _one_error_line(r, "cuts_train.jsonl.gz:1: utterance 'en1': duration must be a finite number of seconds > 0, got nan")
