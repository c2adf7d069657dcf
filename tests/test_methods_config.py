"""conf/methods.yaml reuses `make demo`'s runs: every stage input it shares with
conf/demo.yaml is identical, and it names one variant of each method family."""

from __future__ import annotations

from pathlib import Path

from dualasr.config import load_config, model_config, train_config

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_methods_config_shares_the_demo_recipe_and_its_reference_runs():
    demo, methods = load_config(CONF / "demo.yaml"), load_config(CONF / "methods.yaml")
    # The corpus, features and LMs are fingerprinted from these sections.
    for section in ("seed", "synth", "text", "data", "decode", "lm"):
        assert getattr(methods, section) == getattr(demo, section), f"conf/methods.yaml: {section} differs from demo.yaml"
    assert (methods.study.seeds, methods.study.epochs) == (demo.study.seeds, demo.study.epochs)
    # A model's fingerprint holds its merged model and train sections and its name.
    for name in demo.study.models:
        assert model_config(methods, name) == model_config(demo, name), name
        for lang in methods.synth.languages:
            assert train_config(methods, lang, name) == train_config(demo, lang, name), (name, lang)


def test_methods_config_has_one_variant_of_each_family():
    cfg = load_config(CONF / "methods.yaml")
    variants = {n: (model_config(cfg, n), train_config(cfg, "en", n)) for n in cfg.study.models if n not in ("sso", "mso", "do")}
    assert all(m.mode == "do" for m, _ in variants.values())
    families = {
        "branches": lambda m, t: m.encoder.task_specific_layers > 0 and m.separation is None,
        "hierarchy": lambda m, t: m.hierarchy is not None,
        "aggregation": lambda m, t: t.mtl is not None and t.mtl.aggregator is not None,
        "weighting": lambda m, t: t.mtl is not None and t.mtl.weighting is not None,
        "separation": lambda m, t: m.separation is not None,
        "adapters": lambda m, t: m.adapters is not None,
    }
    for family, has in families.items():
        assert any(has(m, t) for m, t in variants.values()), f"conf/methods.yaml: no {family} variant"
