"""Cuts a stage can use, and what happens to the others.

A cut a stage cannot use (its audio cannot be read, or it is longer than
``data.max_utterance_seconds``) is an error naming the cut, its audio file and
the reason. When the user asks to skip invalid input (``data.skip_invalid`` or
``--skip-invalid``), such cuts are left out instead, counted on the console and
listed in a TSV beside the stage's output, in the layout of
:func:`dualasr.data.manifest.write_skipped`. Nothing is left out silently.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lhotse import CutSet

from dualasr.data.manifest import ManifestError, Skipped, write_skipped

log = logging.getLogger(__name__)


class UnusableCutError(ManifestError):
    """A cut a stage cannot use; the message names the cut, its audio and why."""


def audio_of(cut) -> str:
    """The audio file(s) of a cut, for messages."""
    if cut.recording is None:
        return "no audio"
    return ", ".join(s.source for s in cut.recording.sources)


def unusable(cut, source: str, reason: str, skip_invalid: bool, skipped: list[Skipped]) -> None:
    """Raise :class:`UnusableCutError` for ``cut``, or, with ``skip_invalid``,
    append it to ``skipped``."""
    if not skip_invalid:
        raise UnusableCutError(f"{source}: cut {cut.id!r} ({audio_of(cut)}): {reason}")
    skipped.append(Skipped(cut.id, source, f"{audio_of(cut)}: {reason}"))


def within_max_duration(
    cuts: CutSet, max_seconds: float, source: str, skip_invalid: bool, skipped: list[Skipped]
) -> CutSet:
    """``cuts`` without those longer than ``max_seconds`` (each an error, or
    with ``skip_invalid`` appended to ``skipped``). ``source`` names the manifest."""
    kept = []
    for cut in cuts:
        if cut.duration > max_seconds:
            reason = (
                f"{cut.duration:.1f} s is longer than data.max_utterance_seconds = {max_seconds:g} s; "
                "segment the recording, raise the limit, or skip it with --skip-invalid"
            )
            unusable(cut, source, reason, skip_invalid, skipped)
        else:
            kept.append(cut)
    return cuts if len(kept) == len(cuts) else CutSet.from_cuts(kept)


def record_skipped(skipped: list[Skipped], path: Path, what: str) -> None:
    """List ``skipped`` in ``path`` and say so on the console; with nothing
    skipped, remove a list a previous run left there so it cannot be taken for this run's."""
    path = Path(path)
    if not skipped:
        path.unlink(missing_ok=True)
        return
    write_skipped(skipped, path)
    log.warning("%s: skipped %d unusable cut(s), e.g. %s; listed in %s", what, len(skipped), skipped[0].id, path)
