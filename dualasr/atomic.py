"""Atomic file writes: a crash or a kill leaves the old file or the new one,
never half of one. Every writer of results (manifests, tables, figures,
vocabularies, checkpoints) goes through :func:`atomic_path`."""

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
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str, overwrite: bool = False) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""
    with atomic_path(path, overwrite) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Save a matplotlib Figure as PNG atomically; returns ``path``."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return Path(path)
