from dualasr.data import manifest as m
from dualasr.data.stats import corpus_stats, format_table, read_stats_csv, split_of, write_stats


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
