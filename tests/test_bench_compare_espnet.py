"""bench/compare_espnet.py without ESPnet: the batch file both workers read
round-trips, ESPnet's loss mix reproduces dualasr's DO weights term by term,
and the bench skips with the install command when ESPnet's venv is absent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dualasr.model.config import DEFAULT_WEIGHTS

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import _espnet_worker
    import _step_server

    return _step_server, _espnet_worker


def test_batch_file_round_trips(bench, tmp_path):
    server, _ = bench
    gen = torch.Generator().manual_seed(0)
    batches = []
    for b, t, n in ((2, 50, 5), (3, 40, 7)):
        batch = {"feats": torch.randn(b, t, 80, generator=gen), "feat_lens": torch.tensor([t] + [t - 3] * (b - 1))}
        for o in server.OUTPUTS:
            batch[o] = torch.randint(1, 20, (b, n), generator=gen)
            batch[o][1:, -2:] = -1
            batch[f"{o}_lens"] = torch.tensor([n] + [n - 2] * (b - 1))
        batches.append(batch)
    spec = {"model": {"d_model": 144}, "vocab": {"surface": 29, "meaning": 31}, "lr": 0.002}
    path = tmp_path / "batches.npz"
    server.write_batches(path, spec, torch.arange(80.0), torch.ones(80), batches)
    got_spec, mean, std, got = server.read_batches(path)
    assert got_spec == spec
    assert torch.equal(mean, torch.arange(80.0)) and torch.equal(std, torch.ones(80))
    assert len(got) == len(batches)
    for want, have in zip(batches, got, strict=True):
        assert set(have) == set(want)
        for key, value in want.items():
            assert have[key].dtype == (torch.float32 if key == "feats" else torch.int64), key
            assert torch.equal(have[key], value), key


@pytest.mark.parametrize(
    "weights",
    [
        DEFAULT_WEIGHTS["do"],
        {"ctc_surface": 0.3, "att_surface": 0.4, "ctc_meaning": 0.1, "att_meaning": 0.2},
        {"ctc_surface": 0.4, "att_surface": 1.0, "att_meaning": 0.6},  # sums to 2
    ],
)
def test_espnet_loss_mix_is_dualasrs(bench, weights):
    _, worker = bench
    mix = worker.loss_mix(weights)
    asr, a, st = mix["asr_weight"], mix["mtlalpha"], mix["st_mtlalpha"]
    # ESPnetSTModel: (1 - asr) [st CTC_m + (1 - st) ATT_m] + asr [a CTC_s + (1 - a) ATT_s]
    espnet = {
        "ctc_surface": asr * a,
        "att_surface": asr * (1 - a),
        "ctc_meaning": (1 - asr) * st,
        "att_meaning": (1 - asr) * (1 - st),
    }
    total = sum(weights.values())
    assert mix["scale"] == pytest.approx(1 / total)
    for key, w in espnet.items():
        assert w == pytest.approx(weights.get(key, 0.0) / total), key


def test_bench_skips_without_espnet(tmp_path):
    run = subprocess.run(
        [sys.executable, str(BENCH / "compare_espnet.py"), "--espnet-venv", str(tmp_path / "absent")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "skipped" in run.stdout and "bash bench/espnet_env.sh" in run.stdout
