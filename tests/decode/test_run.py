"""``dualasr decode`` over a manifest: duration-bounded batches, utterance
length limit, and a model refusing another language's data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dualasr.config import DataConfig, DecodeConfig, TextConfig
from dualasr.data.checks import UnusableCutError
from dualasr.data.manifest import load_manifest, write_manifest
from dualasr.decode import run
from dualasr.decode.run import LanguageMismatchError, decode
from dualasr.model import build_model
from dualasr.model.checkpoint import save_atomic
from dualasr.train.data import build_tokenizers
from tests.torch_fixtures import _tiny_config


def untrained_model(corpus: Path, path: Path, language: str | None = "en") -> Path:
    """A tiny DO model file with the corpus's vocabularies (``language`` None:
    a checkpoint from before checkpoints recorded it)."""
    cuts = load_manifest(corpus / "fbank" / "train.jsonl.gz", check_audio=False)
    cfg = _tiny_config("do")
    tokenizers = build_tokenizers(cuts, cfg.outputs, TextConfig(), path.parent)
    torch.manual_seed(0)
    model = build_model(cfg, {o: len(t) for o, t in tokenizers.items()})
    ckpt = {"model": model.state_dict(), "model_config": cfg.model_dump(),
            "tokenizers": {o: t.to_dict() for o, t in tokenizers.items()}}  # fmt: skip
    if language is not None:
        ckpt["language"] = language
    save_atomic(ckpt, path)
    return path


@pytest.fixture(scope="module")
def model(tiny_corpus, tmp_path_factory) -> Path:
    return untrained_model(tiny_corpus, tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture
def spy(monkeypatch) -> list[list[float]]:
    """Durations of the cuts of every batch given to the search."""
    batches: list[list[float]] = []
    collate = run.collate_inputs

    def recording(cuts, kind):
        batches.append([c.duration for c in cuts])
        return collate(cuts, kind)

    monkeypatch.setattr(run, "collate_inputs", recording)
    return batches


def hyps(path: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


def test_batches_stay_within_the_duration_budget_with_the_same_results(tiny_corpus, model, tmp_path, spy):
    test = tiny_corpus / "fbank" / "test.jsonl.gz"
    durations = sorted((c.duration for c in load_manifest(test, check_audio=False)), reverse=True)
    # A budget below the whole set: several batches, never over it once padded.
    budget = 2.5 * durations[0]
    by_count = decode(model, test, tmp_path / "count", DecodeConfig(beam=2, batch_size=16, max_duration=1e6), progress=False)
    assert spy == [durations]  # one batch of every cut, as counting batches did
    spy.clear()
    by_duration = decode(model, test, tmp_path / "dur", DecodeConfig(beam=2, batch_size=16, max_duration=budget), progress=False)
    assert len(spy) > 1 and all(len(b) * max(b) <= budget for b in spy)
    assert sorted(d for b in spy for d in b) == sorted(durations)
    a, b = hyps(by_count), hyps(by_duration)
    assert a.keys() == b.keys()
    assert {k: (v["surface"], v["meaning"]) for k, v in a.items()} == {k: (v["surface"], v["meaning"]) for k, v in b.items()}


def test_an_utterance_over_the_limit_is_refused_by_name(tiny_corpus, model, tmp_path, spy):
    manifest = tiny_corpus / "fbank" / "test.jsonl.gz"
    cuts = load_manifest(manifest, check_audio=False)
    longest, second = sorted(cuts, key=lambda c: c.duration, reverse=True)[:2]
    long_id, limit = longest.id, (longest.duration + second.duration) / 2  # only the longest is over
    with pytest.raises(UnusableCutError, match=rf"cut '{long_id}' .*longer than data.max_utterance_seconds"):
        decode(model, manifest, tmp_path / "out", DecodeConfig(beam=2), progress=False,
               data=DataConfig(max_utterance_seconds=limit))  # fmt: skip
    assert spy == [] and not run.hyps_file(tmp_path / "out", "test").exists()
    path = decode(model, manifest, tmp_path / "out", DecodeConfig(beam=2), progress=False,
                  data=DataConfig(max_utterance_seconds=limit, skip_invalid=True))  # fmt: skip
    assert set(hyps(path)) == set(cuts.ids) - {long_id}
    rows = (tmp_path / "out" / "decode_test.skipped.tsv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith(f"{long_id}\t")


def test_a_model_refuses_another_languages_data(tiny_corpus, tmp_path):
    korean = untrained_model(tiny_corpus, tmp_path / "ko" / "model.pt", language="ko")
    with pytest.raises(LanguageMismatchError) as err:
        decode(korean, tiny_corpus / "fbank" / "test.jsonl.gz", tmp_path / "out", DecodeConfig(beam=2), progress=False)
    assert str(err.value) == (
        f"{korean}: a model trained on language 'ko' cannot decode "
        f"{tiny_corpus / 'fbank' / 'test.jsonl.gz'} (language 'en')"
    )


def test_without_a_recorded_language_the_vocabulary_decides(tiny_corpus, tmp_path, utterances):
    """An English model (its checkpoint predating the language key) refuses
    Korean references, most of whose characters it has never seen, and still
    decodes English."""
    old = untrained_model(tiny_corpus, tmp_path / "old" / "model.pt", language=None)
    korean = [c for c in load_manifest(tiny_corpus / "fbank" / "test.jsonl.gz", check_audio=False)]
    for cut in korean:
        cut.supervisions[0].language = "ko"
        cut.supervisions[0].custom.update(surface="궁물이 조아요", meaning="국물이 좋아요")
    from lhotse import CutSet

    manifest = write_manifest(CutSet.from_cuts(korean), tmp_path / "ko.jsonl.gz")
    with pytest.raises(LanguageMismatchError, match=r"model.pt: \d+% of the surface reference tokens .*language 'ko'"):
        decode(old, manifest, tmp_path / "out", DecodeConfig(beam=2), progress=False)
    path = decode(old, tiny_corpus / "fbank" / "test.jsonl.gz", tmp_path / "en", DecodeConfig(beam=2), progress=False)
    assert len(hyps(path)) == 6
