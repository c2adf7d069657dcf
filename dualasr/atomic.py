"""Atomic file writes: a crash, a kill or a power cut leaves the old file or the
new one, never half of one. Every writer of results (manifests, tables, figures,
vocabularies, checkpoints) goes through :func:`atomic_path`.

The temporary file of a target ``<dir>/<name>`` is ``<dir>/.<name>.<random><suffix>``;
a killed writer leaves it behind, and :func:`remove_stale_temporaries` deletes it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# mkstemp creates files readable by their owner only; results get the permissions
# an ordinary open() would give them (0666 minus the umask).
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | Path, overwrite: bool = True, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; once the block succeeds it is
    renamed over ``path``, on failure it is deleted. ``overwrite=False`` refuses an
    existing ``path`` (FileExistsError). ``suffix`` ends the temporary name (some
    writers pick the format from it, e.g. Lhotse's ``.jsonl.gz``)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists; refusing to overwrite (pass overwrite=True / --overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        # The data must be on disk before the rename is: otherwise a power cut can
        # leave the new name pointing at an empty or partial file.
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # The rename lives in the directory: until the directory is synced a power
    # cut may undo it (the old file then remains, which is still whole).
    _fsync(path.parent)


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file or, on POSIX, a directory) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temporaries(directory: str | Path, target: str = "*", suffix: str = ".tmp") -> list[Path]:
    """Delete the temporary files that writers of ``directory/<target>`` (a glob
    pattern) killed inside :func:`atomic_path` left behind; returns them. Call it
    only while no other process writes to ``directory``."""
    stale = sorted(Path(directory).glob(f".{target}.*{suffix}"))
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def atomic_write_text(path: str | Path, text: str, overwrite: bool = False) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""
    with atomic_path(path, overwrite) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Save a matplotlib Figure as PNG atomically; returns ``path``."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return Path(path)
