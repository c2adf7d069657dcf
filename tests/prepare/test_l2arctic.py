"""L2-ARCTIC: the annotation tag grammar, both sides kept, splits, broken files, errors."""

from __future__ import annotations

import logging

import pytest

from dualasr.data.manifest import ManifestError, cut_divergence, load_manifest, supervision
from dualasr.data.prepare import CorpusError, prepare_l2arctic
from dualasr.data.prepare.common import OptionError
from dualasr.data.prepare.l2arctic import (
    PhoneLabel,
    held_out_prompt,
    parse_phone_label,
    read_annotation,
)


@pytest.mark.parametrize(
    "label, expected",
    [
        ("AH0", PhoneLabel("AH", "AH", "c", False)),
        ("DH,D,s", PhoneLabel("DH", "D", "s", False)),
        ("T,sil,d", PhoneLabel("T", None, "d", False)),
        ("T, sil ,d", PhoneLabel("T", None, "d", False)),
        ("sil,AH,a", PhoneLabel(None, "AH", "a", False)),
        ("Z,err,s", PhoneLabel("Z", "ERR", "s", False)),
        ("AH,AO*,s", PhoneLabel("AH", "AO", "s", True)),
        ("IH1*", PhoneLabel("IH", "IH", "c", True)),
        ("ER)", PhoneLabel("ER", "ER", "c", False)),
        ("AH)", PhoneLabel("AH", "AH", "c", False)),
        ("V`", PhoneLabel("V", "V", "c", False)),
        ("N_", PhoneLabel("N", "N", "c", False)),
        ("ah0", PhoneLabel("AH", "AH", "c", False)),
        ("D, T ,S", PhoneLabel("D", "T", "s", False)),
        ("", None),
        ("sil", None),
        ("SP", None),
        ("  ", None),
    ],
)
def test_phone_label_grammar(label, expected):
    assert parse_phone_label(label) == expected


@pytest.mark.parametrize(
    "label, message",
    [
        ("XX", "unknown phone 'XX'"),
        ("AH,AO", "expected a phone or 'CPL,PPL,type'"),
        ("AH,AO,s,x", "expected a phone or 'CPL,PPL,type'"),
        ("AH,AO,q", "unknown error type 'q'"),
        ("sil,AH,d", "type 'd' needs a phone as CPL and sil as PPL"),
        ("AH,sil,s", "type 's' needs a phone as CPL and a phone as PPL"),
        ("AH,AO,a", "type 'a' needs sil as CPL and a phone as PPL"),
        ("err", "bare 'err' has no canonical phone"),
        ("err,AH,s", "'err' cannot be the canonical phone"),
    ],
)
def test_bad_phone_labels_say_why(label, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_phone_label(label)


# What the awkward labels of conftest.AWKWARD_LABELS must give.
AWKWARD_CANONICAL = ["DH", "AH", "T", "Z", "AH", "ER", "AH", "V", "N", "IH"]
AWKWARD_SURFACE = ["D", "AH", "AH", "ERR", "AO", "ER", "AH", "V", "N", "IH"]
AWKWARD_ERRORS = [
    {
        "index": 0,
        "canonical": "DH",
        "perceived": "D",
        "type": "s",
        "distortion": False,
        "start": 0.04,
        "end": 0.06,
    },
    {
        "index": 2,
        "canonical": "T",
        "perceived": None,
        "type": "d",
        "distortion": False,
        "start": 0.08,
        "end": 0.1,
    },
    {
        "index": 3,
        "canonical": None,
        "perceived": "AH",
        "type": "a",
        "distortion": False,
        "start": 0.1,
        "end": 0.12,
    },
    {
        "index": 3,
        "canonical": "Z",
        "perceived": "ERR",
        "type": "s",
        "distortion": False,
        "start": 0.12,
        "end": 0.14,
    },
    {
        "index": 4,
        "canonical": "AH",
        "perceived": "AO",
        "type": "s",
        "distortion": True,
        "start": 0.14,
        "end": 0.16,
    },
    {
        "index": 9,
        "canonical": "IH",
        "perceived": "IH",
        "type": "c",
        "distortion": True,
        "start": 0.24,
        "end": 0.26,
    },
]
PROMPT = "Author of the danger trail, Philip Steels, etc."
MEANING = "author of the danger trail philip steels etc"


def _cuts(out, split):
    return {c.id: c for c in load_manifest(out / f"cuts_{split}.jsonl.gz")}


def test_prepare_keeps_both_sides_with_exact_phones(l2arctic, tmp_path, caplog):
    corpus, out = l2arctic, tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="dualasr.prepare"):
        report = prepare_l2arctic(corpus, out)

    train, dev, test = _cuts(out, "train"), _cuts(out, "dev"), _cuts(out, "test")
    assert (list(train), list(dev), list(test)) == (
        ["ABA_arctic_a0001"],
        ["YDCK_arctic_a0001"],
        ["NJS_arctic_a0003"],
    )
    sup = supervision(train["ABA_arctic_a0001"])
    assert sup.canonical_phones == AWKWARD_CANONICAL
    assert sup.surface_phones == AWKWARD_SURFACE
    assert sup.surface == " ".join(AWKWARD_SURFACE)
    assert sup.meaning == MEANING and sup.text == MEANING
    assert sup.raw_text == PROMPT
    assert sup.phone_errors == AWKWARD_ERRORS
    assert sup.annotation_comments == ["check vowel"]
    assert (sup.l1, sup.speaker, sup.language) == ("arabic", "ABA", "en")
    # Annotated: sub DH>D, del T, ins AH, sub Z>ERR, sub AH>AO; the edit
    # distance counts the adjacent del T + ins AH as one substitution, and the
    # distorted-but-correct IH as no edit.
    assert cut_divergence(train["ABA_arctic_a0001"]) == 4
    assert supervision(dev["YDCK_arctic_a0001"]).l1 == "korean"
    assert supervision(test["NJS_arctic_a0003"]).surface_phones == ["B", "IH"]
    # The 44.1 kHz WAV is referenced in place, not resampled or copied.
    rec = train["ABA_arctic_a0001"].recording
    assert rec.sampling_rate == 44100
    assert rec.sources[0].source == str(corpus / "ABA" / "wav" / "arctic_a0001.wav")

    # Counts: 6 utterances found, 3 kept, 2 known-broken skipped, 1 unannotated excluded.
    assert report.total_found == 6 and report.total_kept == 3
    assert report.skipped == {"known broken annotation": 2}
    assert report.excluded == {"no manual annotation (include_unannotated=False)": 1}
    assert report.found == {"train": 2, "dev": 3, "test": 1}
    broken = [w for w in report.warnings if "known broken" in w]
    assert [w.split(": ")[0] for w in broken] == [
        str(corpus / "YDCK" / "annotation" / f"{s}.TextGrid")
        for s in ("arctic_a0209", "arctic_a0272")
    ]
    assert sum("known broken" in r.message for r in caplog.records) == 2
    assert (out / "skipped.tsv").read_text().count("known broken annotation") == 2
    assert sorted(p.name for p in report.paths) == [
        "cuts_dev.jsonl.gz",
        "cuts_test.jsonl.gz",
        "cuts_train.jsonl.gz",
        "skipped.tsv",
    ]
    text = str(report)
    assert "3 of 6 utterances kept" in text and "known broken annotation" in text


def test_unannotated_kept_meaning_only_in_their_own_manifest(l2arctic, tmp_path):
    corpus, out = l2arctic, tmp_path / "out"
    report = prepare_l2arctic(corpus, out, include_unannotated=True)
    assert "ABA_arctic_a0002" not in _cuts(out, "train")  # never in the surface manifests
    only = _cuts(out, "train_meaning_only")
    sup = supervision(only["ABA_arctic_a0002"])
    assert sup.surface_available is False
    assert sup.surface == sup.meaning == MEANING
    assert "surface_phones" not in sup.custom and "canonical_phones" not in sup.custom
    assert report.kept == {"train": 1, "dev": 1, "test": 1, "train_meaning_only": 1}
    assert not (out / "cuts_dev_meaning_only.jsonl.gz").exists()  # empty manifests are not written


def test_configurable_splits_and_suitcase(l2arctic, tmp_path, wav_file, textgrid_file):
    corpus, out = l2arctic, tmp_path / "out"
    suitcase = corpus / "suitcase_corpus"
    wav_file(suitcase / "wav" / "aba.wav", 0.4, 44100)
    (suitcase / "transcript").mkdir()
    (suitcase / "transcript" / "aba.txt").write_text("I packed my suitcase.\n", encoding="utf-8")
    textgrid_file(
        suitcase / "annotation" / "aba.TextGrid", {"phones": ["AY1", "P,B,s", "AE1", "K", "T"]}
    )

    report = prepare_l2arctic(
        corpus, out, test_speakers=["aba"], dev_speakers=[], include_suitcase=True
    )
    test = _cuts(out, "test")
    assert sorted(test) == ["ABA_arctic_a0001", "ABA_suitcase"]
    sup = supervision(test["ABA_suitcase"])
    assert (sup.surface, sup.meaning, sup.subset) == (
        "AY B AE K T",
        "i packed my suitcase",
        "suitcase",
    )
    assert sorted(_cuts(out, "train")) == ["NJS_arctic_a0003", "YDCK_arctic_a0001"]
    assert report.found["dev"] == 0
    with pytest.raises(OptionError, match="both test_speakers and dev_speakers: NJS"):
        prepare_l2arctic(corpus, tmp_path / "o2", test_speakers=["NJS"], dev_speakers=["njs"])
    with pytest.raises(OptionError, match="list of speaker ids"):
        prepare_l2arctic(corpus, tmp_path / "o2", test_speakers="NJS")


def test_unseen_prompts_split_test_by_whether_training_read_the_prompt(add_l2arctic_utterance, tmp_path):
    """Both regimes from one corpus: test_seen prompts were all read in training,
    test_unseen prompts never, and every left-out training reading is counted."""
    corpus, stems = tmp_path / "l2arctic", [f"arctic_a{i:04d}" for i in range(1, 13)]
    held = {s for s in stems if held_out_prompt(s, 0.4)}
    assert held and held != set(stems)  # the fixture needs both kinds of prompt
    for spk in ("ABA", "NJS"):
        for stem in stems:
            add_l2arctic_utterance(corpus, spk, stem, ["HH", "AH0"], prompt=f"prompt {stem}")
    report = prepare_l2arctic(corpus, tmp_path / "out", test_speakers=["NJS"], dev_speakers=[], unseen_prompts=0.4)

    def prompts(split):
        return {c.id.split("_", 1)[1] for c in _cuts(tmp_path / "out", split).values()}

    assert prompts("train") == set(stems) - held
    assert prompts("test_seen") == set(stems) - held
    assert prompts("test_unseen") == held
    assert not (tmp_path / "out" / "cuts_test.jsonl.gz").exists()
    assert report.excluded["prompt held out of training (unseen_prompts)"] == len(held)
    with pytest.raises(OptionError, match="unseen_prompts"):
        prepare_l2arctic(corpus, tmp_path / "o2", unseen_prompts=1.0)


def test_malformed_textgrid_names_the_file_or_is_skipped(
    l2arctic, add_l2arctic_utterance, tmp_path
):
    corpus = l2arctic
    add_l2arctic_utterance(corpus, "ABA", "arctic_a0009", annotation_text="File type = nonsense\n")
    bad = corpus / "ABA" / "annotation" / "arctic_a0009.TextGrid"
    with pytest.raises(CorpusError, match=f"^{bad}: malformed TextGrid"):
        prepare_l2arctic(corpus, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any(
        (tmp_path / "out").iterdir()
    )  # nothing partial

    report = prepare_l2arctic(corpus, tmp_path / "out", skip_invalid=True)
    assert report.skipped == {"known broken annotation": 2, "malformed TextGrid": 1}
    assert report.kept == {"train": 1, "dev": 1, "test": 1}
    assert (
        f"ABA_arctic_a0009\t{bad}\t{bad}: malformed TextGrid"
        in (tmp_path / "out" / "skipped.tsv").read_text()
    )


def test_bad_label_error_names_file_interval_and_label(add_l2arctic_utterance, tmp_path):
    corpus = tmp_path / "l2arctic"
    add_l2arctic_utterance(corpus, "ABA", "arctic_a0001", ["sil", "HH", "AH,QQ,s"])
    with pytest.raises(CorpusError) as e:
        prepare_l2arctic(corpus, tmp_path / "out")
    path = corpus / "ABA" / "annotation" / "arctic_a0001.TextGrid"
    assert (
        str(e.value)
        == f"{path}: phones interval 3 [0.040-0.060 s] label 'AH,QQ,s': unknown phone 'QQ'"
    )
    assert e.value.reason == "bad phone label"


def test_textgrid_without_phones_tier(tmp_path, textgrid_file):
    path = textgrid_file(tmp_path / "x.TextGrid", {"words": ["hi"]})
    with pytest.raises(CorpusError, match=r"no 'phones' interval tier \(tiers: words\)"):
        read_annotation(path)


def test_missing_audio_and_transcript_are_errors_naming_the_file(add_l2arctic_utterance, tmp_path):
    corpus = tmp_path / "l2arctic"
    add_l2arctic_utterance(corpus, "ABA", "arctic_a0001", ["HH", "AY1"], wav=False)
    with pytest.raises(
        ManifestError,
        match=f"{corpus / 'ABA' / 'wav' / 'arctic_a0001.wav'}: missing or unreadable audio",
    ):
        prepare_l2arctic(corpus, tmp_path / "out")
    add_l2arctic_utterance(corpus, "ABA", "arctic_a0001", ["HH", "AY1"])
    (corpus / "ABA" / "transcript" / "arctic_a0001.txt").unlink()
    with pytest.raises(
        CorpusError,
        match=f"{corpus / 'ABA' / 'transcript' / 'arctic_a0001.txt'}: missing transcript",
    ):
        prepare_l2arctic(corpus, tmp_path / "out")
    # An annotation whose every phone is deleted leaves an empty surface: invalid.
    add_l2arctic_utterance(corpus, "ABA", "arctic_a0001", ["HH,sil,d"])
    add_l2arctic_utterance(corpus, "ABA", "arctic_a0002")  # unannotated, kept meaning-only
    report = prepare_l2arctic(corpus, tmp_path / "out", skip_invalid=True, include_unannotated=True)
    assert report.skipped == {"empty transcript": 1}
    with pytest.raises(CorpusError, match="no <SPK>/wav or <SPK>/annotation directory"):
        prepare_l2arctic(tmp_path / "out", tmp_path / "o3")


def test_refuses_to_overwrite_before_doing_any_work(l2arctic, tmp_path):
    corpus, out = l2arctic, tmp_path / "out"
    prepare_l2arctic(corpus, out)
    before = (out / "cuts_train.jsonl.gz").read_bytes()
    with pytest.raises(FileExistsError, match="cuts_train.jsonl.gz: exists; refusing to overwrite"):
        prepare_l2arctic(corpus, out)
    assert (out / "cuts_train.jsonl.gz").read_bytes() == before
    report = prepare_l2arctic(
        corpus, out, overwrite=True, dev_speakers=[], test_speakers=["NJS", "YDCK"]
    )
    assert report.kept == {"train": 1, "test": 2}
    # The old dev manifest was not rewritten by this split: the report says so.
    assert any("cuts_dev.jsonl.gz: left from an earlier run" in w for w in report.warnings)
