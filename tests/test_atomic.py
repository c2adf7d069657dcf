import os
import stat

import pytest

from dualasr.atomic import atomic_path, atomic_write_text, remove_stale_temporaries, save_figure


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_refuses_to_overwrite_unless_asked(tmp_path):
    target = tmp_path / "m.jsonl"
    atomic_write_text(target, "a")
    with pytest.raises(FileExistsError, match="m.jsonl"):
        atomic_write_text(target, "b")
    atomic_write_text(target, "b", overwrite=True)
    assert target.read_text() == "b"


def test_results_get_the_permissions_of_an_ordinary_open(tmp_path):
    atomic_write_text(tmp_path / "report.md", "x")
    (tmp_path / "plain.md").write_text("x")
    mode = stat.S_IMODE((tmp_path / "report.md").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.md").stat().st_mode)  # mkstemp alone: 0600


def test_save_figure_writes_a_png(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1])
    path = save_figure(fig, tmp_path / "figures" / "f.png")
    plt.close(fig)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_file_is_synced_before_the_rename_and_its_directory_after(tmp_path, monkeypatch):
    """What a power cut needs: the new bytes on disk before the new name points
    at them, and the rename itself on disk before the write counts as done."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        st = os.fstat(fd)
        events.append(("fsync", "dir" if stat.S_ISDIR(st.st_mode) else "file", st.st_ino))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.stat(src).st_ino))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "table.csv"
    atomic_write_text(target, "new")
    file_ino, dir_ino = target.stat().st_ino, tmp_path.stat().st_ino
    assert events == [("fsync", "file", file_ino), ("replace", file_ino), ("fsync", "dir", dir_ino)]


def test_remove_stale_temporaries_takes_only_atomic_path_names(tmp_path):
    stale = [tmp_path / ".last.pt.abc123_x.tmp", tmp_path / ".epoch3.pt.zz9_0000.tmp"]
    kept = [tmp_path / "last.pt", tmp_path / ".last.pt", tmp_path / ".notes.txt.a1b2c3d4.tmp",
            tmp_path / "x.pt.tmp", tmp_path / ".last.pt.abc123_x.flac"]  # fmt: skip
    for p in stale + kept:
        p.write_text("x")
    assert remove_stale_temporaries(tmp_path, "*.pt") == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(kept)
