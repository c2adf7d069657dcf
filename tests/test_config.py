from pathlib import Path

import pytest

from dualasr.config import (
    ConfigError,
    Variant,
    load_config,
    model_config,
    model_label,
    train_config,
)
from dualasr.reference import REFERENCE_ED_SHARES

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.mark.parametrize("name", ["smoke", "demo", "paper", "whisper", "wav2vec2"])
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
        ("study:\n  jobs: 0\n", r"bad.yaml: study.jobs: expected a number of jobs >= 1 or 'auto', got 0"),
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


VARIANTS = """\
model:
  d_model: 64
  encoder: {layers: 4, heads: 2, ffn_dim: 128, kernel: 7}
  decoder: {layers: 1, heads: 2, ffn_dim: 128}
train: {epochs: 3, lr: 0.001}
study:
  epochs: {en: 5}
  models:
    sso: {}
    mso: {}
    do: {}
    do_split2: {mode: do, model: {encoder: {task_specific_layers: 2}}}
    do_w: {mode: do, weights: {ctc_surface: 0.3, att_surface: 0.4, att_meaning: 0.3}}
    do_x: {mode: do, label: "DO (branches)", train: {lr: 0.002, epochs: 7}}
"""


def test_variants_merge_over_the_shared_sections(tmp_path):
    (tmp_path / "c.yaml").write_text(VARIANTS)
    cfg = load_config(tmp_path / "c.yaml")
    assert list(cfg.study.models) == ["sso", "mso", "do", "do_split2", "do_w", "do_x"]
    assert model_config(cfg, "sso").mode == "sso" and model_config(cfg, "mso").outputs == ("meaning",)
    split = model_config(cfg, "do_split2")
    # Deep merge: the override's key changes, the shared encoder's other keys stay.
    assert (split.mode, split.encoder.task_specific_layers, split.encoder.layers, split.encoder.ffn_dim) == ("do", 2, 4, 128)
    assert model_config(cfg, "do").encoder.task_specific_layers == 0
    assert model_config(cfg, "do_w").weights == {"ctc_surface": 0.3, "att_surface": 0.4, "att_meaning": 0.3, "ctc_meaning": 0.0}
    assert model_config(cfg, "do").weights["att_surface"] == 0.5  # the reference weights
    assert [model_label(cfg, n) for n in ("sso", "do", "do_w", "do_x")] == ["SSO", "DO", "do_w", "DO (branches)"]
    # Epochs: the variant's own, else study.epochs of the language, else train.epochs.
    assert (train_config(cfg, "en", "do").epochs, train_config(cfg, "ko", "do").epochs) == (5, 3)
    assert (train_config(cfg, "en", "do_x").epochs, train_config(cfg, "en", "do_x").lr) == (7, 0.002)
    assert train_config(cfg, "en", "do").lr == 0.001
    # The list form names the reference variants with no overrides.
    (tmp_path / "l.yaml").write_text("study:\n  models: [sso, do]\n")
    listed = load_config(tmp_path / "l.yaml")
    assert listed.study.models == {"sso": Variant(), "do": Variant()}
    with pytest.raises(ConfigError, match=r"study.models: no variant 'mso' \(variants: sso, do\)"):
        model_config(listed, "mso")


@pytest.mark.parametrize(
    "study, message",
    [
        ("models: {do_split2: {mode: do, model: {encoder: {task_specific_layers: -1}}}}",
         r"/bad.yaml: study.models.do_split2.model.encoder.task_specific_layers: Input should be greater than or equal to 0$"),
        ("models: {do_split9: {mode: do, model: {encoder: {task_specific_layers: 9}}}}",
         r"/bad.yaml: study.models.do_split9.model.encoder: encoder.task_specific_layers=9 exceeds encoder.layers=6$"),
        ("models: {do_b: {mode: do, model: {bogus: 1}}}", r"/bad.yaml: study.models.do_b.model.bogus: Extra inputs are not permitted$"),
        ("models: {do_t: {mode: do, train: {lr: 0}}}", r"/bad.yaml: study.models.do_t.train.lr: Input should be greater than 0$"),
        ("models: {so_w: {mode: sso, weights: {att_meaning: 1}}}",
         r"/bad.yaml: study.models.so_w: weights \['att_meaning'\] not valid for mode 'sso'"),
        ("models: {do_m: {mode: do, model: {mode: sso}}}", r"/bad.yaml: study.models.do_m.model.mode: set as study.models.do_m.mode$"),
        ("models: {split: {model: {d_model: 64}}}", r"/bad.yaml: study.models.split.mode: required \(sso, mso or do\)"),
        ("models: {do: {mode: dual}}", r"/bad.yaml: study.models.do.mode: Input should be 'sso', 'mso' or 'do'$"),
        ("models: {'do x': {mode: do}}", r"/bad.yaml: study.models: 'do x': a variant name holds letters, digits, _ and - only$"),
        ("models: [sso, do, do]", r"/bad.yaml: study.models: do given twice$"),
        ("models: {}", r"/bad.yaml: study.models: no model to train"),
        ("weights: {do: {ctc_surface: 0.1}}", r"/bad.yaml: study.weights: loss weights moved to the variants: .*study.models.<name>.weights"),
        # Every bad variant is reported, each on its own line with the file.
        ("models: {a: {}, do_t: {mode: do, train: {lr: 0}}}",
         r"/bad.yaml: study.models.a.mode: required .*\n.*/bad.yaml: study.models.do_t.train.lr: Input should be greater than 0$"),
    ],
)
def test_bad_variant_names_file_variant_and_key(tmp_path, study, message):
    (tmp_path / "bad.yaml").write_text(f"study:\n  {study}\n")
    with pytest.raises(ConfigError, match=message) as e:
        load_config(tmp_path / "bad.yaml")
    assert str(e.value).startswith(str(tmp_path / "bad.yaml"))
