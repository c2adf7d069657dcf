import stat

import pytest

from dualasr.atomic import atomic_path, atomic_write_text, save_figure


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
