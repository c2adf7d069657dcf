"""What a run directory promises: a finished output is reused only when the
inputs it was made from are the inputs of this run, and one process writes
the directory at a time.

**Fingerprints.** Beside every stage output ``X`` lies ``X.fingerprint.json``, a
record of the inputs ``X`` was made from: manifests, model files, the config
sections the stage reads, the seed. A manifest counts by its decompressed
content (ids, texts, durations, paths) and by the size and modification time
of every file its cuts point to (audio, feature archives): statting is
affordable for a 100-GB corpus where hashing every audio byte is not. Model
and language-model files count by their SHA-256.

The record is written *before* the stage starts and the output is the "done"
marker, written atomically last: a kill at any point leaves either no output
(the stage runs again) or an output whose record describes it. When the
inputs differ, a cheap derived output (features, CMVN, hypotheses) is deleted
and made again, with a log line saying why (:func:`reuse_or_recompute`); a
trained model is never replaced behind the user's back (:func:`reuse_or_refuse`).

**Lock.** :func:`locked` holds an exclusive ``flock`` on ``DIR/.dualasr.lock``
for a whole command; the kernel releases it when the process ends, even by
``kill -9``. The file names the holder (pid, host, command, start time) for
the error a second writer gets.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dualasr.atomic import atomic_write_text
from dualasr.errors import DualasrError

log = logging.getLogger(__name__)

LOCK_FILE = ".dualasr.lock"


class StaleOutputError(DualasrError):
    """An expensive output (a trained model) made from other inputs than this run's."""


class RunDirBusy(DualasrError):
    """Another process is writing the run directory."""


# ----------------------------------------------------------------- fingerprints


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (model files: a rewritten but equal file matches)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError as e:
        raise DualasrError(f"{path}: cannot read ({e.strerror or e})") from None
    return digest.hexdigest()


def value_sha256(value) -> str:
    """SHA-256 of a JSON-serialisable value (e.g. CMVN statistics), key order aside."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _referenced_files(cut: dict) -> Iterator[str]:
    """Paths of the files a Lhotse cut (as stored in JSONL) reads: audio sources
    and the feature archive."""
    for source in (cut.get("recording") or {}).get("sources", []):
        if source.get("type") == "file":
            yield source["source"]
    if storage := (cut.get("features") or {}).get("storage_path"):
        yield storage


def manifest_stamp(path: str | Path) -> dict:
    """``{"utterances", "content", "files"}``: the cut count, the SHA-256 of the
    decompressed manifest, and a SHA-256 over ``path size mtime_ns`` of every
    file the cuts read (``missing`` for absent ones)."""
    path = Path(path)
    content, files, n = hashlib.sha256(), set(), 0
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            for line in f:
                if not line.strip():
                    continue
                content.update(line)
                files.update(_referenced_files(json.loads(line)))
                n += 1
    except (OSError, EOFError, ValueError) as e:
        raise DualasrError(f"{path}: cannot read manifest ({e})") from None
    stamps = hashlib.sha256()
    for name in sorted(files):
        try:
            st = os.stat(name)
            stamps.update(f"{name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        except OSError:
            stamps.update(f"{name}\tmissing\n".encode())
    return {"utterances": n, "content": content.hexdigest(), "files": stamps.hexdigest()}


def fingerprint_path(output: str | Path) -> Path:
    """Where the record of ``output``'s inputs lies: ``<output>.fingerprint.json``."""
    output = Path(output)
    return output.with_name(output.name + ".fingerprint.json")


def read_fingerprint(output: str | Path) -> dict | None:
    """The recorded inputs of ``output``, or None when there is no readable record."""
    try:
        return json.loads(fingerprint_path(output).read_text())
    except (OSError, ValueError):
        return None


def _leaves(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict) and value:
        return {k: v for key, sub in value.items() for k, v in _leaves(sub, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def differences(old: dict | None, new: dict) -> str:
    """What changed between two fingerprints, for a message:
    ``model (mode, weights.att_meaning), train_manifest (content)``."""
    if old is None:
        return "no record of its inputs"
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            la, lb = _leaves(a), _leaves(b)
            keys = sorted(k for k in set(la) | set(lb) if la.get(k) != lb.get(k))
            changed.append(f"{key} ({', '.join(keys)})")
        else:
            changed.append(key)
    return ", ".join(changed)


def _record(output: Path, fingerprint: dict) -> None:
    atomic_write_text(fingerprint_path(output), json.dumps(fingerprint, indent=1, sort_keys=True), overwrite=True)


def reuse_or_recompute(output: str | Path, fingerprint: dict) -> bool:
    """True when ``output`` exists and was made from ``fingerprint``'s inputs
    (reuse it). Else deletes ``output``, records ``fingerprint`` and returns
    False: the caller makes the output, writing it last."""
    output = Path(output)
    old = read_fingerprint(output)
    if output.exists():
        if old == fingerprint:
            return True
        log.info("%s: inputs changed since it was made (%s); recomputing", output, differences(old, fingerprint))
    output.unlink(missing_ok=True)
    _record(output, fingerprint)
    return False


def reuse_or_refuse(
    output: str | Path, fingerprint: dict, partial: Iterable[Path] = (), stale: Iterable[Path] = (),
    write: bool = True,
) -> bool:  # fmt: skip
    """True when ``output`` exists and was made from ``fingerprint``'s inputs.
    When it, or any ``partial`` product of the same work (a checkpoint to resume
    from), exists from other inputs: :class:`StaleOutputError` naming the
    directory and what differs. Else deletes the ``stale`` files, records
    ``fingerprint`` and returns False (start or resume). ``write=False`` decides
    the same without touching files (the other ranks of a distributed run)."""
    output = Path(output)
    old = read_fingerprint(output)
    if old == fingerprint:
        return output.exists()
    done = [p for p in (output, *partial) if Path(p).exists()]
    if done:
        raise StaleOutputError(
            f"{output.parent}: {Path(done[0]).name} was made from other data/config "
            f"({differences(old, fingerprint)}); use a new --out or delete it"
        )
    if write:
        for path in stale:
            Path(path).unlink(missing_ok=True)
        _record(output, fingerprint)
    return False


# ------------------------------------------------------------------------- lock


@contextmanager
def locked(run_dir: str | Path) -> Iterator[None]:
    """Hold the run directory ``run_dir`` (created if missing) for this process
    until the block ends; :class:`RunDirBusy` naming the holder when another
    process holds it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    # No O_TRUNC: opening must not erase the holder's description.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirBusy(f"{run_dir}: in use by {_holder(path)}; wait for it to finish or use another --out") from None
        holder = {
            "pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv).replace("\n", " "),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        }  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _holder(path: Path) -> str:
    try:
        h = json.loads(path.read_text())
        return f"pid {h['pid']} on {h['host']} since {h['started']} ({h['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (just starting)"
