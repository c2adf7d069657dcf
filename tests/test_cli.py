"""The CLI is thin: it parses, calls the library and reports bad input as one line."""

import errno
import gzip
import os

from lhotse import CutSet
from typer.testing import CliRunner

from dualasr.cli import app
from dualasr.data import manifest as m

runner = CliRunner()


def test_import_export_stats(tmp_path, utterances):
    m.export_jsonl(m.cuts_from_utterances(utterances), tmp_path / "in.jsonl")
    out = tmp_path / "data" / "cuts_train.jsonl.gz"
    r = runner.invoke(app, ["import", "jsonl", str(tmp_path / "in.jsonl"), str(out)])
    assert r.exit_code == 0, r.output
    assert "wrote 5 utterances" in r.output
    r = runner.invoke(app, ["import", "jsonl", str(tmp_path / "in.jsonl"), str(out)])
    assert r.exit_code == 2 and "refusing to overwrite" in r.output
    r = runner.invoke(app, ["stats", str(tmp_path / "data")])
    assert r.exit_code == 0 and "| en | 3 | 3 |" in r.output and "| ko | 2 | 2 |" in r.output
    r = runner.invoke(app, ["export", "kaldi", str(out), str(tmp_path / "kaldi")])
    assert r.exit_code == 0 and (tmp_path / "kaldi" / "text.surface").read_text().startswith("en1 i sink so")


def test_skip_invalid_reports_count_and_file(tmp_path, utterances):
    utterances[2][1].meaning = ""
    m.export_jsonl(m.cuts_from_utterances(utterances[:2]), tmp_path / "ok.jsonl")
    lines = (tmp_path / "ok.jsonl").read_text()
    bad = '{"id": "z", "audio": "missing.wav", "language": "en", "speaker": "s", "surface": "a", "meaning": "a"}\n'
    (tmp_path / "in.jsonl").write_text(lines + bad)
    out = tmp_path / "cuts_train.jsonl.gz"
    r = runner.invoke(app, ["import", "jsonl", str(tmp_path / "in.jsonl"), str(out)])
    assert r.exit_code == 2 and "in.jsonl:3" in r.output and "missing or unreadable audio" in r.output
    assert not out.exists()
    r = runner.invoke(app, ["import", "jsonl", str(tmp_path / "in.jsonl"), str(out), "--skip-invalid"])
    assert r.exit_code == 0 and "skipped 1 invalid item(s)" in r.output
    skipped = (tmp_path / "cuts_train.skipped.tsv").read_text().splitlines()
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


def test_skipped_list_never_replaces_the_manifest_or_a_file(tmp_path, utterances):
    m.export_jsonl(m.cuts_from_utterances(utterances), tmp_path / "in.jsonl")
    out = tmp_path / "cuts_train.jsonl.gz"
    args = ["import", "jsonl", str(tmp_path / "in.jsonl"), str(out), "--skipped"]
    r = runner.invoke(app, [*args, str(out), "--overwrite"])
    _one_error_line(r, "cuts_train.jsonl.gz: the skipped list cannot be the output manifest")
    assert not out.exists()
    (tmp_path / "notes.txt").write_text("mine\n")
    r = runner.invoke(app, [*args, str(tmp_path / "notes.txt")])
    _one_error_line(r, "notes.txt: exists; refusing to overwrite")
    assert (tmp_path / "notes.txt").read_text() == "mine\n" and not out.exists()


def test_import_bad_source_or_output_is_one_line_and_writes_nothing(tmp_path, utterances):
    m.export_jsonl(m.cuts_from_utterances(utterances), tmp_path / "in.jsonl")
    data = gzip.compress((tmp_path / "in.jsonl").read_bytes())
    (tmp_path / "in.jsonl.gz").write_bytes(data[:-20])
    out = tmp_path / "o" / "cuts_train.jsonl.gz"
    cases = [
        (["jsonl", "in.jsonl.gz", str(out)], "in.jsonl.gz: cannot read after line 4 (Compressed file ended"),
        (["jsonl", "nope.jsonl", str(out)], "nope.jsonl: not found; expected a JSONL file"),
        (["csv", ".", str(out)], ": is a directory; expected a CSV file"),
        (["kaldi", "in.jsonl", str(out)], "in.jsonl: is a file; expected a Kaldi data directory"),
        (["jsonl", "in.jsonl", str(tmp_path / "o" / "cuts_train.json")],
         "cuts_train.json: a manifest name must end in .jsonl or .jsonl.gz"),
    ]  # fmt: skip
    for args, message in cases:
        args[1] = str(tmp_path / args[1])
        r = runner.invoke(app, ["import", *args])
        assert "Aborted" not in r.output
        _one_error_line(r, message)
    assert not (tmp_path / "o").exists()


def test_import_into_a_full_disk_is_one_line(tmp_path, utterances, monkeypatch):
    m.export_jsonl(m.cuts_from_utterances(utterances), tmp_path / "in.jsonl")

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(CutSet, "to_file", full)
    out = tmp_path / "o" / "cuts_train.jsonl.gz"
    r = runner.invoke(app, ["import", "jsonl", str(tmp_path / "in.jsonl"), str(out)])
    _one_error_line(r, "cuts_train.jsonl.gz: cannot write (No space left on device)")
    assert list((tmp_path / "o").iterdir()) == []


def test_skip_invalid_leaving_nothing_is_an_error(tmp_path):
    bad = '{"id": "z", "audio": "missing.wav", "language": "en", "speaker": "s", "surface": "a", "meaning": "a"}\n'
    (tmp_path / "in.jsonl").write_text(bad + bad.replace('"z"', '"y"'))
    out = tmp_path / "cuts_train.jsonl.gz"
    r = runner.invoke(app, ["import", "jsonl", str(tmp_path / "in.jsonl"), str(out), "--skip-invalid"])
    _one_error_line(r, "in.jsonl: no usable utterance: all 2 item(s) were skipped (reasons in ",
                    "cuts_train.skipped.tsv); ", "cuts_train.jsonl.gz not written")  # fmt: skip
    assert not out.exists()
    assert len((tmp_path / "cuts_train.skipped.tsv").read_text().splitlines()) == 3


def test_reimport_leaves_no_stale_skipped_list(tmp_path, utterances):
    m.export_jsonl(m.cuts_from_utterances(utterances), tmp_path / "in.jsonl")
    good = (tmp_path / "in.jsonl").read_text()
    bad = '{"id": "z", "audio": "missing.wav", "language": "en", "speaker": "s", "surface": "a", "meaning": "a"}\n'
    (tmp_path / "in.jsonl").write_text(good + bad)
    out, listed = tmp_path / "cuts_train.jsonl.gz", tmp_path / "cuts_train.skipped.tsv"
    args = ["import", "jsonl", str(tmp_path / "in.jsonl"), str(out), "--skip-invalid", "--overwrite"]
    assert runner.invoke(app, args).exit_code == 0 and listed.read_text().splitlines()[1].startswith("z\t")
    (tmp_path / "in.jsonl").write_text(good)  # the corpus was mended
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and "wrote 5 utterances" in r.output and "skipped" not in r.output
    assert not listed.exists()


def test_stats_refuses_a_nan_duration(tmp_path, utterances):
    path = m.write_manifest(m.cuts_from_utterances(utterances), tmp_path / "cuts_train.jsonl.gz")
    text = gzip.open(path, "rt").read().replace('"duration": 0.4,', '"duration": NaN,', 1)
    with gzip.open(path, "wt") as f:
        f.write(text)
    r = runner.invoke(app, ["stats", str(tmp_path)])
    _one_error_line(r, "cuts_train.jsonl.gz:1: utterance 'en1': duration must be a finite number of seconds > 0, got nan")
