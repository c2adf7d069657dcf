"""Checkpoints: unusable ones are errors naming the file, writes are atomic,
and averaging is exact."""

from __future__ import annotations

import os
import re
import shutil

import pytest
import torch

from dualasr.errors import DualasrError
from dualasr.model.checkpoint import CheckpointError, load_checkpoint, load_model, save_atomic
from dualasr.rundir import StaleOutputError
from dualasr.train.trainer import average_checkpoints


def corrupt(path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "random":
        path.write_bytes(os.urandom(len(data)))
    elif how == "empty":
        path.write_bytes(b"")
    else:  # a readable torch file that is not a checkpoint
        torch.save({"weights": torch.zeros(3)}, path)


@pytest.mark.parametrize("how", ["truncated", "random", "empty", "foreign"])
def test_resume_from_corrupt_checkpoint_names_the_file(run, stopped, tmp_path, how):
    out = tmp_path / "do"
    shutil.copytree(stopped, out)
    last = out / "checkpoints" / "last.pt"
    corrupt(last, how)
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(last))}: ") as e:
        run(out)
    assert isinstance(e.value, DualasrError)
    assert "corrupt" in str(e.value) or "not a dualasr checkpoint" in str(e.value)
    assert not (out / "model.pt").exists()


@pytest.mark.parametrize("how", ["truncated", "random"])
def test_load_model_on_corrupt_model_names_the_file(reference, tmp_path, how):
    path = tmp_path / "model.pt"
    shutil.copy(reference / "model.pt", path)
    model, tokenizers = load_model(path)  # intact: loads
    assert set(tokenizers) == set(model.outputs) == {"surface", "meaning"}
    corrupt(path, how)
    with pytest.raises(
        CheckpointError, match=f"^{re.escape(str(path))}: corrupt or unreadable checkpoint"
    ):
        load_model(path)


def test_resume_with_other_model_config_names_file_and_keys(run, stopped, tmp_path):
    out = tmp_path / "do"
    shutil.copytree(stopped, out)
    other = run.model_cfg.model_copy(update={"d_model": 64})
    last = out / "checkpoints" / "last.pt"
    # The run directory's record of its inputs refuses it before the checkpoint is read.
    with pytest.raises(
        StaleOutputError,
        match=f"^{re.escape(str(out))}: last.pt was made from other data/config \\(model \\(d_model\\)\\)",
    ):
        run(out, model_cfg=other)
    other_train = run.train_cfg.model_copy(update={"lr": 0.01})
    with pytest.raises(StaleOutputError, match="other data/config \\(train \\(lr\\)\\)"):
        run(out, train_cfg=other_train)
    assert load_checkpoint(last)["epoch"] == 1  # left as it was


def test_load_model_with_weights_of_another_config(reference, tmp_path):
    ckpt = load_checkpoint(reference / "model.pt")
    ckpt["model_config"] = {**ckpt["model_config"], "d_model": 64}
    path = tmp_path / "model.pt"
    save_atomic(ckpt, path)
    with pytest.raises(
        CheckpointError, match=f"^{re.escape(str(path))}: weights do not fit the saved model config"
    ):
        load_model(path)


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cannot pickle this")


def test_failed_save_leaves_no_partial_file(tmp_path):
    path = tmp_path / "ckpt" / "last.pt"
    save_atomic({"model": {"w": torch.ones(4)}, "model_config": {}}, path)
    before = path.read_bytes()
    # A large tensor is written first, then pickling fails half-way.
    with pytest.raises(RuntimeError, match="cannot pickle"):
        save_atomic(
            {"model": {"w": torch.zeros(1 << 20)}, "model_config": {}, "bad": Unpicklable()}, path
        )
    assert os.listdir(path.parent) == ["last.pt"]  # no temporary file left
    assert path.read_bytes() == before  # the previous checkpoint is intact
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(4))
    with pytest.raises(RuntimeError, match="cannot pickle"):
        save_atomic({"bad": Unpicklable()}, tmp_path / "ckpt" / "new.pt")
    assert os.listdir(path.parent) == ["last.pt"]  # a failed first save leaves nothing


def write_ckpt(path, state):
    save_atomic({"model": state, "model_config": {}}, path)
    return path


def test_average_checkpoints_is_exact(tmp_path):
    w = [torch.tensor([[1.0, 2.0], [3.0, -4.0]]), torch.tensor([[2.0, 2.0], [0.5, 4.0]]),
         torch.tensor([[0.1, 0.2], [0.3, 0.4]])]  # fmt: skip
    half = [torch.tensor([1.0], dtype=torch.float16), torch.tensor([2.0], dtype=torch.float16),
            torch.tensor([4.0], dtype=torch.float16)]  # fmt: skip
    steps = [torch.tensor(10), torch.tensor(20), torch.tensor(30)]  # BatchNorm num_batches_tracked
    paths = [
        write_ckpt(
            tmp_path / f"e{i}.pt",
            {
                "w": w[i],
                "bn.running_mean": w[i][0] * 10,
                "half": half[i],
                "bn.num_batches_tracked": steps[i],
            },
        )
        for i in range(3)
    ]
    avg = average_checkpoints(paths)
    expected = ((w[0].double() + w[1].double() + w[2].double()) / 3).float()
    assert avg["w"].dtype == torch.float32 and torch.equal(avg["w"], expected)
    running = [(x[0] * 10).double() for x in w]
    assert torch.equal(avg["bn.running_mean"], ((running[0] + running[1] + running[2]) / 3).float())
    assert avg["half"].dtype == torch.float16 and torch.equal(
        avg["half"], torch.tensor([7 / 3], dtype=torch.float16)
    )
    # Integer buffers are not averaged: the last (newest) checkpoint's value, same dtype.
    assert avg["bn.num_batches_tracked"].dtype == torch.int64
    assert int(avg["bn.num_batches_tracked"]) == 30
    # One checkpoint: its own weights.
    one = average_checkpoints(paths[1:2])
    assert all(torch.equal(one[k], v) for k, v in load_checkpoint(paths[1])["model"].items())


@pytest.mark.parametrize(
    "other",
    [{"w": torch.ones(2), "extra": torch.ones(2)}, {}, {"w": torch.ones(1)}],
    ids=["extra", "missing", "shape"],
)
def test_average_checkpoints_rejects_other_models(tmp_path, other):
    a = write_ckpt(tmp_path / "a.pt", {"w": torch.ones(2)})
    b = write_ckpt(tmp_path / "b.pt", other)
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(b))}: .*{re.escape(str(a))}"):
        average_checkpoints([a, b])


def test_model_pt_averages_the_best_epochs_of_a_run(reference):
    final = load_checkpoint(reference / "model.pt")
    history = load_checkpoint(reference / "checkpoints" / "last.pt")["history"]
    best = sorted(history, key=lambda h: h["dev_loss"])[:2]  # average_best: 2
    assert sorted(final["averaged_epochs"]) == sorted(h["epoch"] for h in best)
    epochs = sorted(final["averaged_epochs"])
    kept = sorted(p.name for p in (reference / "checkpoints").glob("epoch*.pt"))
    assert kept == [f"epoch{e}.pt" for e in epochs]  # the others were pruned
    states = [load_checkpoint(reference / "checkpoints" / f"epoch{e}.pt")["model"] for e in epochs]
    assert "encoder.blocks.0.conv.norm.num_batches_tracked" in final["model"]  # BatchNorm
    for k, v in final["model"].items():
        if v.is_floating_point():
            assert torch.equal(
                v, ((states[0][k].double() + states[1][k].double()) / 2).to(v.dtype)
            ), k
        else:
            assert torch.equal(v, states[1][k]), k
    assert not torch.equal(states[0]["encoder.blocks.0.conv.norm.num_batches_tracked"],
                           states[1]["encoder.blocks.0.conv.norm.num_batches_tracked"])  # fmt: skip
