"""Manifests: validation names file and line, atomic writes, round-trips."""

from __future__ import annotations

import errno
import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet

from dualasr.data import manifest as m
from dualasr.data.manifest import ManifestError, Utterance


def test_lhotse_round_trip_keeps_both_sides(tmp_path, utterances):
    cuts = m.cuts_from_utterances(utterances)
    path = m.write_manifest(cuts, tmp_path / "cuts_train.jsonl.gz")
    loaded = m.load_manifest(path)
    assert [c.id for c in loaded] == [u.id for _, u in utterances]
    sup = m.supervision(loaded["en1"])
    assert (sup.surface, sup.meaning, sup.language, sup.l1) == ("i sink so", "i think so", "en", "ko")
    assert sup.text == "i think so"  # Lhotse tools reading `text` see the meaning
    assert m.cut_divergence(loaded["en1"]) == 2
    assert m.cut_divergence(loaded["en3"]) == 0
    # Lhotse can load the audio of a cut read back from disk.
    assert loaded["ko1"].load_audio().shape[1] == int(0.4 * 16000 + 0.1 * 3 * 16000)


def test_phone_divergence_used_when_phones_present(tmp_path, utterances):
    _, utt = utterances[0]
    utt.surface_phones, utt.canonical_phones = ["S", "IH", "NG", "K"], ["TH", "IH", "NG", "K"]
    cut = m.to_cut(utt)
    assert m.cut_divergence(cut) == 1  # one phone, not the 2 characters of the text


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "kaldi"])
def test_exchange_formats_round_trip(tmp_path, utterances, fmt):
    cuts = m.cuts_from_utterances(utterances)
    target = tmp_path / ("kaldi" if fmt == "kaldi" else f"x.{fmt}")
    {"jsonl": m.export_jsonl, "csv": m.export_csv, "kaldi": m.export_kaldi}[fmt](cuts, target)
    reader = {"jsonl": m.read_jsonl, "csv": m.read_csv, "kaldi": m.read_kaldi}[fmt]
    back = m.cuts_from_utterances(reader(target))
    assert sorted(m.cut_to_row(c).items() for c in back) == sorted(m.cut_to_row(c).items() for c in cuts)


def test_kaldi_segments_round_trip(tmp_path, utterances):
    _, utt = utterances[0]
    utt.offset, utt.duration = 0.1, 0.2
    cuts = m.cuts_from_utterances([("x", utt)])
    m.export_kaldi(cuts, tmp_path / "k")
    assert (tmp_path / "k" / "segments").read_text().split() == ["en1", "en1", "0.100", "0.300"]
    back = m.cuts_from_utterances(m.read_kaldi(tmp_path / "k"))
    assert back["en1"].start == pytest.approx(0.1) and back["en1"].duration == pytest.approx(0.2)


def _bad(utterances, **change) -> list[tuple[str, Utterance]]:
    source, utt = utterances[1]
    for k, v in change.items():
        setattr(utt, k, v)
    return utterances


@pytest.mark.parametrize(
    "change, message",
    [
        ({"audio": "/nonexistent/x.wav"}, "missing or unreadable audio"),
        ({"surface": "  "}, "empty surface transcript"),
        ({"meaning": ""}, "empty meaning transcript"),
        ({"language": "fr"}, "unknown language 'fr'"),
        ({"id": "en1"}, "duplicate utterance id 'en1'"),
        ({"duration": 30.0}, "outside the audio"),
    ],
)
def test_bad_input_is_an_error_naming_source(utterances, change, message):
    with pytest.raises(ManifestError, match=message) as err:
        m.cuts_from_utterances(_bad(utterances, **change))
    assert "fixture:2" in str(err.value)


def test_skip_invalid_records_every_skip(utterances):
    skipped: list[m.Skipped] = []
    cuts = m.cuts_from_utterances(_bad(utterances, surface=""), skip_invalid=True, skipped=skipped)
    assert len(cuts) == 4
    assert [(s.id, s.source) for s in skipped] == [("en2", "fixture:2")]
    assert "empty surface" in skipped[0].reason


def test_unreadable_audio_file_is_reported(tmp_path, utterances):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav")
    with pytest.raises(ManifestError, match="bad.wav: missing or unreadable audio"):
        m.cuts_from_utterances(_bad(utterances, audio=str(bad)))


def test_load_names_file_and_line(tmp_path, utterances):
    path = m.write_manifest(m.cuts_from_utterances(utterances), tmp_path / "cuts_dev.jsonl.gz")
    lines = gzip.open(path, "rt").read().splitlines()
    row = json.loads(lines[2])
    row["supervisions"][0]["custom"]["meaning"] = ""
    lines[2] = json.dumps(row)
    lines.insert(4, "{not json")
    lines.append(lines[0])  # duplicate id
    bad = tmp_path / "cuts_bad.jsonl.gz"
    with gzip.open(bad, "wt") as f:
        f.write("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=r"cuts_bad.jsonl.gz:3: utterance 'en3': empty meaning"):
        m.load_manifest(bad)
    skipped: list[m.Skipped] = []
    cuts = m.load_manifest(bad, skip_invalid=True, skipped=skipped)
    assert len(cuts) == 4
    assert [s.source.rsplit(":", 1)[1] for s in skipped] == ["3", "5", "7"]
    assert "not a Lhotse cut" in skipped[1].reason and "duplicate" in skipped[2].reason
    out = tmp_path / "skipped.tsv"
    m.write_skipped(skipped, out)
    assert len(out.read_text().splitlines()) == 4  # header + 3


def test_missing_audio_detected_on_load(tmp_path, utterances):
    path = m.write_manifest(m.cuts_from_utterances(utterances), tmp_path / "cuts_test.jsonl.gz")
    Path(utterances[3][1].audio).unlink()
    with pytest.raises(ManifestError, match=r"cuts_test.jsonl.gz:4: utterance 'ko1': .*ko1.wav"):
        m.load_manifest(path)
    assert len(m.load_manifest(path, check_audio=False)) == 5


def test_write_is_atomic_and_never_silently_overwrites(tmp_path, utterances):
    cuts = m.cuts_from_utterances(utterances)
    path = m.write_manifest(cuts, tmp_path / "cuts_train.jsonl.gz")
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        m.write_manifest(cuts.subset(first=1), path)
    assert path.read_bytes() == before

    class Boom(Exception):
        pass

    class Exploding:
        def to_file(self, p):
            Path(p).write_text("half")
            raise Boom

    with pytest.raises(Boom):
        m.write_manifest(Exploding(), path, overwrite=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio", "cuts_train.jsonl.gz"]


def test_kaldi_import_errors_name_the_file(tmp_path, utterances):
    m.export_kaldi(m.cuts_from_utterances(utterances), tmp_path / "k")
    (tmp_path / "k" / "utt2spk").write_text("en1 spk0\n")
    with pytest.raises(ManifestError, match=r"text.surface:2: 'en2' has no line in .*utt2spk"):
        list(m.read_kaldi(tmp_path / "k"))
    (tmp_path / "k" / "utt2lang").unlink()
    with pytest.raises(ManifestError, match="no utt2lang file"):
        list(m.read_kaldi(tmp_path / "k"))


def test_jsonl_import_errors_name_line(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text('{"id": "a", "audio": "a.wav", "language": "en", "speaker": "s", "surface": "x", "meaning": "x"}\n[1]\n')
    with pytest.raises(ManifestError, match=r"in.jsonl:2: expected a JSON object"):
        list(m.read_jsonl(p))
    p.write_text('{"id": "a"}\n')
    with pytest.raises(ManifestError, match=r"in.jsonl:1: missing field\(s\) audio, language"):
        list(m.read_jsonl(p))


# ------------------------------------------------------------------ bad input


def _row(uid="a", audio="audio/en1.wav", **change) -> dict:
    row = {"id": uid, "audio": audio, "language": "en", "speaker": "s", "surface": "i sink so", "meaning": "i think so"}
    return {**row, **change}


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    "duration, shown", [("NaN", "nan"), ("Infinity", "inf"), ("-0.5", "-0.5"), ("0", "0.0")]
)
def test_non_finite_or_negative_duration_is_refused_naming_line(tmp_path, utterances, duration, shown):
    # json.dumps writes NaN and Infinity as JSON's non-standard literals, as other tools do.
    p = _jsonl(tmp_path / "in.jsonl", [_row(duration=0.3), f'{json.dumps(_row("b"))[:-1]}, "duration": {duration}}}'])
    with pytest.raises(ManifestError, match=rf"in.jsonl:2: utterance 'b': duration must be a finite number of seconds > 0, got {shown}$"):
        m.cuts_from_utterances(m.read_jsonl(p))
    skipped: list[m.Skipped] = []
    cuts = m.cuts_from_utterances(m.read_jsonl(p), skip_invalid=True, skipped=skipped)
    assert [c.id for c in cuts] == ["a"] and [(s.id, s.source.rsplit("/", 1)[1]) for s in skipped] == [("b", "in.jsonl:2")]


def test_nan_duration_in_a_csv_and_in_a_manifest_is_refused(tmp_path, utterances):
    csv_path = tmp_path / "in.csv"
    csv_path.write_text("id,audio,language,speaker,surface,meaning,duration\na,audio/en1.wav,en,s,hi,hi,nan\n")
    with pytest.raises(ManifestError, match=r"in.csv:2: utterance 'a': duration must be .* got nan"):
        m.cuts_from_utterances(m.read_csv(csv_path))
    # A manifest edited by hand: loading (and so `stats`) names the line instead of counting nan hours.
    path = m.write_manifest(m.cuts_from_utterances(utterances), tmp_path / "cuts_train.jsonl.gz")
    lines = gzip.open(path, "rt").read().replace('"duration": 0.5,', '"duration": NaN,', 1)
    with gzip.open(path, "wt") as f:
        f.write(lines)
    with pytest.raises(ManifestError, match=r"cuts_train.jsonl.gz:2: utterance 'en2': duration must be .* got nan"):
        m.load_manifest(path)


def _right_channel_speech(path: Path, sr: int = 44100, seconds: float = 0.6) -> np.ndarray:
    """A 16-bit stereo WAV, silent on the left and a speech-like signal on the
    right (harmonics of a gliding pitch under a syllable-rate envelope); returns
    the samples as soundfile reads them, (samples, 2)."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 40 * t / seconds
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.5 - 0.5 * np.cos(2 * np.pi * 4 * t))
    stereo = np.stack([np.zeros_like(voice), 0.2 * voice], axis=1)
    sf.write(path, stereo, sr, subtype="PCM_16")
    return sf.read(path, dtype="float32")[0]


def test_stereo_audio_is_heard_as_the_mean_of_its_channels(tmp_path):
    wav = tmp_path / "stereo.wav"
    samples = _right_channel_speech(wav)
    assert not samples[:, 0].any() and samples[:, 1].any()
    cuts = m.cuts_from_utterances([("x:1", Utterance("st", str(wav), "en", "s", "hello", "hello"))])
    cut = m.load_manifest(m.write_manifest(cuts, tmp_path / "cuts_train.jsonl.gz"))["st"]
    audio = cut.load_audio()
    assert audio.shape == (1, len(samples)) and np.abs(audio).max() > 0.05  # not channel 0's silence
    np.testing.assert_allclose(audio[0], samples.mean(axis=1), atol=1e-6)
    # The features stage resamples to 16 kHz and extracts fbank from the same mean.
    from lhotse import LilcomChunkyWriter, MonoCut, Recording

    from dualasr.data.features import extractor

    mono = tmp_path / "mean.wav"
    sf.write(mono, samples.mean(axis=1), 44100, subtype="FLOAT")
    reference = MonoCut("ref", 0, cut.duration, 0, recording=Recording.from_file(mono)).resample(16000)
    # As dualasr.data.features stores them.
    stored = CutSet.from_cuts([cut.resample(16000)]).compute_and_store_features(
        extractor=extractor(), storage_path=tmp_path / "feats", storage_type=LilcomChunkyWriter
    )[0].load_features()
    expected = reference.compute_features(extractor())
    np.testing.assert_allclose(stored, expected, atol=0.1)  # lilcom's compression error
    silence = MonoCut("ref", 0, cut.duration, 0, recording=Recording.from_file(wav)).resample(16000)
    assert stored.max() > silence.compute_features(extractor()).max() + 10  # channel 0 alone: the log floor


def test_truncated_wav_is_refused_naming_the_file(tmp_path, utterances):
    source, utt = utterances[1]
    data = Path(utt.audio).read_bytes()
    Path(utt.audio).write_bytes(data[: len(data) // 2])  # header still promises the whole file
    with pytest.raises(ManifestError, match=r"fixture:2: utterance 'en2': .*en2.wav: truncated WAV: its header "
                       rf"promises {len(data) - 44} bytes of audio, the file holds {len(data) // 2 - 44}"):
        m.cuts_from_utterances(utterances)
    skipped: list[m.Skipped] = []
    assert len(m.cuts_from_utterances(utterances, skip_invalid=True, skipped=skipped)) == 4
    assert [s.id for s in skipped] == ["en2"] and "truncated WAV" in skipped[0].reason


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "kaldi"])
def test_non_utf8_bytes_name_file_and_line(tmp_path, utterances, fmt):
    cuts = m.cuts_from_utterances(utterances)
    target = tmp_path / ("kaldi" if fmt == "kaldi" else f"in.{fmt}")
    {"jsonl": m.export_jsonl, "csv": m.export_csv, "kaldi": m.export_kaldi}[fmt](cuts, target)
    bad = target / "text.surface" if fmt == "kaldi" else target
    lines = bad.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b"e", b"\xe9", 1)  # Latin-1 é on line 3
    bad.write_bytes(b"".join(lines))
    reader = {"jsonl": m.read_jsonl, "csv": m.read_csv, "kaldi": m.read_kaldi}[fmt]
    with pytest.raises(ManifestError, match=rf"{bad.name}:3: not UTF-8 text \(byte 0xe9 at column \d+\)"):
        list(reader(target))


def test_load_manifest_names_the_line_of_bad_bytes_and_a_truncation(tmp_path, utterances):
    path = m.write_manifest(m.cuts_from_utterances(utterances), tmp_path / "cuts_train.jsonl.gz")
    lines = gzip.decompress(path.read_bytes()).splitlines(keepends=True)
    lines[1] = lines[1].replace(b"e", b"\xe9", 1)
    path.write_bytes(gzip.compress(b"".join(lines)))
    with pytest.raises(ManifestError, match=r"cuts_train.jsonl.gz:2: not UTF-8 text \(byte 0xe9"):
        m.load_manifest(path, check_audio=False)
    data = gzip.compress(b"".join([lines[0], *lines[2:]]))
    path.write_bytes(data[: len(data) - 20])
    with pytest.raises(ManifestError, match=r"cuts_train.jsonl.gz: cannot read after line \d+"):
        m.load_manifest(path, check_audio=False)


def test_csv_with_a_byte_order_mark_reads(tmp_path, utterances):
    m.export_csv(m.cuts_from_utterances(utterances), tmp_path / "in.csv")
    text = (tmp_path / "in.csv").read_text()
    (tmp_path / "in.csv").write_text(text, encoding="utf-8-sig")  # as spreadsheets save it
    assert [u.id for _, u in m.read_csv(tmp_path / "in.csv")] == ["en1", "en2", "en3", "ko1", "ko2"]


def test_kaldi_files_separated_by_tabs(tmp_path, utterances):
    m.export_kaldi(m.cuts_from_utterances(utterances), tmp_path / "k")
    for name in ("text.surface", "text.meaning", "utt2spk", "wav.scp"):
        p = tmp_path / "k" / name
        p.write_text("".join(line.replace(" ", "\t", 1) + "\n" for line in p.read_text().splitlines()))
    utts = dict((u.id, u) for _, u in m.read_kaldi(tmp_path / "k"))
    assert (utts["en2"].surface, utts["en2"].meaning) == ("dis is bery good", "this is very good")
    assert utts["en2"].speaker == "spk1" and Path(utts["en2"].audio).name == "en2.wav"


def test_truncated_gzip_names_the_file(tmp_path, utterances):
    m.export_jsonl(m.cuts_from_utterances(utterances), tmp_path / "in.jsonl")
    data = gzip.compress((tmp_path / "in.jsonl").read_bytes())
    (tmp_path / "in.jsonl.gz").write_bytes(data[: len(data) - 20])
    with pytest.raises(ManifestError, match=r"in.jsonl.gz: cannot read after line \d+ \(Compressed file ended"):
        list(m.read_jsonl(tmp_path / "in.jsonl.gz"))


def test_missing_or_wrong_kind_of_source(tmp_path, utterances):
    with pytest.raises(ManifestError, match=r"nope.jsonl: not found; expected a JSONL file"):
        list(m.read_jsonl(tmp_path / "nope.jsonl"))
    with pytest.raises(ManifestError, match=rf"{tmp_path}: is a directory; expected a CSV file"):
        list(m.read_csv(tmp_path))
    (tmp_path / "f").write_text("x")
    with pytest.raises(ManifestError, match=r"f: is a file; expected a Kaldi data directory"):
        list(m.read_kaldi(tmp_path / "f"))
    with pytest.raises(ManifestError, match=r"nope: not found; expected a Kaldi data directory"):
        list(m.read_kaldi(tmp_path / "nope"))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"surface": "!!!"}, r"surface transcript '!!!' is empty once normalised as 'en'"),
        ({"meaning": "학교에 가요"}, r"meaning transcript '학교에 가요' is empty once normalised as 'en'"),
    ],
)
def test_text_that_normalises_to_nothing_is_refused(utterances, change, message):
    with pytest.raises(ManifestError, match=rf"fixture:2: utterance 'en2': {message}"):
        m.cuts_from_utterances(_bad(utterances, **change))


def test_kaldi_export_checks_every_target_before_writing(tmp_path, utterances):
    cuts = m.cuts_from_utterances(utterances)
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "utt2spk").write_text("old\n")
    with pytest.raises(FileExistsError, match=r"k: holds utt2spk; refusing to overwrite"):
        m.export_kaldi(cuts, tmp_path / "k")
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == ["utt2spk"]
    assert (tmp_path / "k" / "utt2spk").read_text() == "old\n"
    # With overwrite, an optional file of an earlier export would be read back as this one's.
    (tmp_path / "k" / "segments").write_text("en1 en1 0.0 0.1\n")
    m.export_kaldi(cuts, tmp_path / "k", overwrite=True)
    assert not (tmp_path / "k" / "segments").exists()
    assert len(m.cuts_from_utterances(m.read_kaldi(tmp_path / "k"))) == 5


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EACCES])
def test_failed_write_names_the_path_and_leaves_nothing(tmp_path, utterances, monkeypatch, err):
    cuts = m.cuts_from_utterances(utterances)

    def fail(self, *a, **k):  # as a full disk or a read-only directory would
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(CutSet, "to_file", fail)
    with pytest.raises(ManifestError, match=rf"cuts_train.jsonl.gz: cannot write \({os.strerror(err)}\)$"):
        m.write_manifest(cuts, tmp_path / "out" / "cuts_train.jsonl.gz")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
def test_read_only_output_directory_names_the_path(tmp_path, utterances):
    (tmp_path / "ro").mkdir(mode=0o500)
    with pytest.raises(ManifestError, match=r"ro/cuts_train.jsonl.gz: cannot write \(Permission denied\)"):
        m.write_manifest(m.cuts_from_utterances(utterances), tmp_path / "ro" / "cuts_train.jsonl.gz")


def test_manifest_name_must_end_in_jsonl(tmp_path, utterances):
    with pytest.raises(ManifestError, match=r"cuts_train.json: a manifest name must end in .jsonl or .jsonl.gz"):
        m.write_manifest(m.cuts_from_utterances(utterances), tmp_path / "cuts_train.json")
    assert list(tmp_path.iterdir()) == [tmp_path / "audio"]
