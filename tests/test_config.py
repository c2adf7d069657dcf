from pathlib import Path

import pytest

from dualasr.config import ConfigError, load_config
from dualasr.reference import REFERENCE_ED_SHARES

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.mark.parametrize("name", ["smoke", "demo", "paper"])
def test_shipped_configs_load(name):
    cfg = load_config(CONF / f"{name}.yaml")
    assert set(cfg.synth.languages) == {"en", "ko"}


def test_demo_matches_reference_shares_within_3_points():
    cfg = load_config(CONF / "demo.yaml")
    for lang, ref in REFERENCE_ED_SHARES.items():
        assert all(abs(a - b) <= 0.03 for a, b in zip(cfg.synth.ed_shares[lang], ref, strict=True))


@pytest.mark.parametrize(
    "text, message",
    [
        ("synth:\n  sentences: {train: many}\n", r"bad.yaml: synth.sentences.train.count: Input should be a valid integer"),
        ("synth:\n  sentences: {train: {en: 5, ko: -1}, dev: 1, test: 1}\n",
         r"bad.yaml: synth.sentences.train.per-language.ko: Input should be greater than or equal to 0"),
        ("synth:\n  sentences: {train: {en: 5}, dev: 1, test: 1}\n", r"bad.yaml: synth: .*sentences.train.ko: missing"),
        ("synth:\n  sentences: {train: 5, dev: 1}\n", r"bad.yaml: synth: .*sentences.test: missing"),
        ("synth:\n  bogus: 1\n", r"bad.yaml: synth.bogus: Extra inputs are not permitted"),
        ("seed: [1\n", r"bad.yaml:\d+: invalid YAML"),
        ("- 1\n", r"bad.yaml: top level must be a mapping"),
        ("synth:\n  ed_shares: {en: [0.5, 0.5]}\n", r"bad.yaml: synth.ed_shares: .*4 non-negative shares"),
        ("synth:\n  rate: [1.5, 1.0]\n", r"bad.yaml: synth: .*rate: lower bound 1.5 > upper bound 1.0"),
        ("synth:\n  languages: [fr]\n", r"bad.yaml: synth.languages.0: Input should be 'en' or 'ko'"),
        ("study:\n  epochs: {en: 0}\n", r"bad.yaml: study.epochs.en: Input should be greater than or equal to 1"),
        ("study:\n  epochs: {fr: 2}\n", r"bad.yaml: study.epochs.fr.\[key\]: Input should be 'en' or 'ko'"),
        ("study:\n  jobs: 0\n", r"bad.yaml: study.jobs: Input should be greater than or equal to 1"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "bad.yaml")


def test_missing_config(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", r"bad.yaml: config file is empty \(write \{\} to use every default\)"),
        (b"# only a comment\n", r"bad.yaml: config file is empty"),
        (b"seed: 1\nsynth:\n  languages: [en]\n  languages: [ko]\n", r"bad.yaml:4: invalid YAML: duplicate key 'languages'"),
        (b"seed: 1\nseed: 2\n", r"bad.yaml:2: invalid YAML: duplicate key 'seed'"),
        (b"seed: 1\n# caf\xe9\n", r"bad.yaml:2: not UTF-8 text \(byte 0xe9\)"),
    ],
)
def test_unusable_config_file_names_file_and_line(tmp_path, data, message):
    (tmp_path / "bad.yaml").write_bytes(data)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "bad.yaml")


def test_explicit_empty_mapping_and_yaml_merge_still_load(tmp_path):
    (tmp_path / "c.yaml").write_text("{}\n")
    assert load_config(tmp_path / "c.yaml").train.epochs == 30  # `{}` asks for the defaults
    # A merge key may repeat a key on purpose: the explicit one wins, no error.
    (tmp_path / "c.yaml").write_text("train:\n  <<: {epochs: 3, lr: 0.5}\n  epochs: 4\n")
    assert load_config(tmp_path / "c.yaml").train.epochs == 4


def test_config_directory_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot read config \(Is a directory\)"):
        load_config(tmp_path)
