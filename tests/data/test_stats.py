from dataclasses import replace

from dualasr.data import manifest as m
from dualasr.data.stats import corpus_stats, format_table, read_stats_csv, split_of, write_stats
from dualasr.score.rates import load_references


def test_table1_layout(tmp_path, utterances):
    cuts = m.cuts_from_utterances(utterances)
    en = cuts.filter(lambda c: c.supervisions[0].language == "en")
    ko = cuts.filter(lambda c: c.supervisions[0].language == "ko")
    m.write_manifest(en.subset(first=2), tmp_path / "c" / "cuts_train.jsonl.gz")
    m.write_manifest(en.subset(last=1), tmp_path / "c" / "cuts_test.jsonl.gz")
    m.write_manifest(ko, tmp_path / "c" / "cuts_dev.jsonl.gz")
    stats = corpus_stats([tmp_path / "c"])
    assert stats["en"].utterances == {"train": 2, "test": 1}
    assert stats["en"].bins == {"1-3": 2, "0": 1}  # ED 2, 3 ("dis", "bery"), 0
    assert stats["ko"].bins == {"1-3": 1, "0": 1}
    table = format_table(stats).splitlines()
    assert table[0].startswith("| language | train | dev | test | total | h train")
    assert table[2].startswith("| en | 2 | 0 | 1 | 3 |")
    assert table[2].endswith("| 33.3 % | 66.7 % | 0.0 % | 0.0 % |")
    # The rows the report reads back give the very same table as the stage's .md.
    write_stats(stats, tmp_path / "study")
    back = read_stats_csv(tmp_path / "study" / "tables" / "corpus.csv")
    assert back["en"].utterances == {"train": 2, "test": 1} and back["ko"].bins == {"1-3": 1, "0": 1}
    assert format_table(back) + "\n" == (tmp_path / "study" / "tables" / "corpus.md").read_text()


def test_split_from_file_name(tmp_path):
    assert split_of(tmp_path / "cuts_train.jsonl.gz") == "train"
    assert split_of(tmp_path / "other.jsonl.gz") == "other"


def test_raw_text_bins_as_its_normalised_form(tmp_path, utterances):
    """ED is measured on what CER scores: case, punctuation and phone stress are
    not divergence, in Table 1 and in the scorer's ED bins alike."""
    (_, en), _, _, (_, ko), _ = utterances
    raw = [
        replace(en, id="hello", surface="Hello, World!", meaning="hello world"),  # raw ED 4, normalised 0
        replace(en, id="sink", surface="I SINK, so...", meaning="i think so"),  # raw ED 9, normalised 2
        replace(ko, id="ko", surface="궁물이, 조아요!", meaning="국물이 좋아요."),  # raw ED 4, normalised 2
        replace(en, id="phones", surface_phones=["S", "IH1", "NG", "K"],
                canonical_phones=["TH", "IH0", "NG", "K"]),  # raw ED 2, normalised 1
    ]  # fmt: skip
    path = m.write_manifest(
        m.cuts_from_utterances((f"raw:{i}", u) for i, u in enumerate(raw)), tmp_path / "cuts_test.jsonl.gz"
    )
    cuts = m.load_manifest(path)
    assert [m.cut_divergence(c) for c in cuts] == [0, 2, 2, 1]
    stats = corpus_stats([path])
    assert stats["en"].bins == {"0": 1, "1-3": 2} and stats["ko"].bins == {"1-3": 1}
    refs = load_references(path)
    assert refs["en"].ed.tolist() == [0, 2, 1] and refs["ko"].ed.tolist() == [2]
