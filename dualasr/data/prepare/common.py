"""What every corpus preparer shares: the report, the collect-validate-write
cycle, speaker-based dev carving and ARPAbet phone handling.

A preparer parses its corpus into ``(manifest, source, Utterance)`` items and
hands them to a :class:`Collector`. Nothing is written until every item of
every split has been parsed and validated (audio headers read, transcripts
checked, ids unique across splits); then each manifest is written atomically
as ``OUTPUT_DIR/cuts_<manifest>.jsonl.gz``. Existing manifests are never
overwritten unless ``overwrite=True``, and that is checked before parsing
starts, so a long run does not fail at the end.

Errors in the corpus raise :class:`CorpusError` (a ``ManifestError``) naming the
file and line or interval. With ``skip_invalid=True`` the item is left out
instead, counted under its reason in the report and listed in
``OUTPUT_DIR/skipped.tsv``.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lhotse import CutSet

from dualasr.data.manifest import (
    SPLITS,
    ManifestError,
    Skipped,
    Utterance,
    cuts_from_utterances,
    write_manifest,
    write_skipped,
)
from dualasr.errors import DualasrError

log = logging.getLogger("dualasr.prepare")

# The 39 ARPAbet phones of CMUdict (stress removed), plus ERR: a phone the
# annotator heard as wrong but could not name (L2-ARCTIC ``err``,
# speechocean762 ``<unk>``).
ARPABET = frozenset(
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY "
    "P R S SH T TH UH UW V W Y Z ZH".split()
)
UNKNOWN_PHONE = "ERR"
PHONES = ARPABET | {UNKNOWN_PHONE}

SKIPPED_FILE = "skipped.tsv"


class OptionError(DualasrError, ValueError):
    """A preparer option with a value it cannot take; the message names the option."""


class CorpusError(ManifestError):
    """A corpus item that cannot be prepared; ``reason`` is the short category
    the report counts it under, the message names the file and line."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def manifest_path(output_dir: str | Path, name: str) -> Path:
    return Path(output_dir) / f"cuts_{name}.jsonl.gz"


@dataclass
class PrepareReport:
    """What a preparer found, kept, skipped and wrote.

    ``found`` and ``kept`` count utterances per manifest name (``train``,
    ``dev``, ``test``, and for L2-ARCTIC ``<split>_meaning_only``);
    ``skipped`` counts invalid items by reason (listed in ``skipped.tsv``);
    ``excluded`` counts items left out by design (e.g. L2-ARCTIC utterances
    without a manual annotation), which are not errors.
    """

    corpus: str
    output_dir: Path
    found: Counter = field(default_factory=Counter)
    kept: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    excluded: Counter = field(default_factory=Counter)
    skipped_items: list[Skipped] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def total_found(self) -> int:
        return sum(self.found.values())

    @property
    def total_kept(self) -> int:
        return sum(self.kept.values())

    def __str__(self) -> str:
        names = sorted(self.found, key=_manifest_order)
        per = ", ".join(f"{n} {self.kept[n]}/{self.found[n]}" for n in names)
        lines = [
            f"{self.corpus}: {self.total_kept} of {self.total_found} utterances kept "
            f"(kept/found: {per or 'none'})"
        ]
        if self.skipped:
            lines.append(
                f"skipped {sum(self.skipped.values())} (see {self.output_dir / SKIPPED_FILE}):"
            )
            lines += [f"  {n:6d}  {reason}" for reason, n in self.skipped.most_common()]
        if self.excluded:
            lines.append("excluded by design:")
            lines += [f"  {n:6d}  {reason}" for reason, n in self.excluded.most_common()]
        if self.warnings:
            lines.append("warnings:")
            lines += [f"  {w}" for w in self.warnings]
        lines.append("wrote:")
        lines += [f"  {p}" for p in self.paths]
        return "\n".join(lines)


def _manifest_order(name: str) -> tuple[int, str]:
    base = name.split("_")[0]
    return (SPLITS.index(base) if base in SPLITS else len(SPLITS), name)


# Reasons ``cuts_from_utterances`` gives (dualasr.data.manifest), mapped to the
# category the report counts them under; first match wins.
_VALIDATION_REASONS = (
    ("missing or unreadable audio", "missing or unreadable audio"),
    ("outside the audio", "segment outside the audio"),
    ("empty surface transcript", "empty transcript"),
    ("empty meaning transcript", "empty transcript"),
    ("duplicate utterance id", "duplicate utterance id"),
)


def _validation_reason(message: str) -> str:
    for needle, reason in _VALIDATION_REASONS:
        if needle in message:
            return reason
    return "invalid utterance"


class Collector:
    """Collects a preparer's utterances per manifest, then validates and writes them.

    ``manifests`` are the names this run may write; their files are checked
    for existence up front (``FileExistsError`` unless ``overwrite``);
    ``skipped.tsv`` is checked when there is something to write in it.
    """

    def __init__(
        self,
        corpus: str,
        output_dir: str | Path,
        manifests: Iterable[str],
        overwrite: bool = False,
        skip_invalid: bool = False,
    ):
        self.report = PrepareReport(corpus=corpus, output_dir=Path(output_dir))
        self.overwrite = overwrite
        self.skip_invalid = skip_invalid
        self._manifests = list(manifests)
        self._items: list[
            tuple[str, str, Utterance]
        ] = []  # (manifest, source, utt), in corpus order
        self._check_targets(self._manifests)

    def _check_targets(self, names: Iterable[str | None]) -> None:
        if self.overwrite:
            return
        for name in names:
            path = self._path(name)
            if path.exists():
                raise FileExistsError(
                    f"{path}: exists; refusing to overwrite (pass overwrite=True / --overwrite)"
                )

    def _path(self, name: str | None) -> Path:
        out = self.report.output_dir
        return out / SKIPPED_FILE if name is None else manifest_path(out, name)

    @contextmanager
    def item(self, manifest: str, utt_id: str, source: str) -> Iterator[None]:
        """Parse one corpus item: a ``CorpusError`` raised inside propagates, or
        with ``skip_invalid`` is counted as found-and-skipped for ``manifest``."""
        try:
            yield
        except CorpusError as e:
            if not self.skip_invalid:
                raise
            self.reject(manifest, utt_id, source, str(e), e.reason)

    def skip(self, utt_id: str, source: str, message: str, reason: str) -> None:
        self.report.skipped_items.append(Skipped(utt_id, source, message))
        self.report.skipped[reason] += 1

    def reject(self, manifest: str, utt_id: str, source: str, message: str, reason: str) -> None:
        """Count one corpus item for ``manifest`` and skip it whatever
        ``skip_invalid`` says (e.g. a file known to be broken)."""
        self.report.found[manifest] += 1
        self.skip(utt_id, source, message, reason)

    def exclude(self, manifest: str, reason: str) -> None:
        """Count an item left out by design (not an error, not in skipped.tsv)."""
        self.report.found[manifest] += 1
        self.report.excluded[reason] += 1

    def add(self, manifest: str, source: str, utt: Utterance) -> None:
        """Count one parsed utterance for ``manifest``; it is validated in :meth:`write`."""
        if manifest not in self._manifests:
            raise AssertionError(f"manifest {manifest!r} was not declared to the Collector")
        self.report.found[manifest] += 1
        self._items.append((manifest, source, utt))

    def warn(self, message: str) -> None:
        log.warning(message)
        self.report.warnings.append(message)

    def write(self) -> PrepareReport:
        """Validate everything collected, then write the non-empty manifests."""
        report = self.report
        manifest_of: dict[str, str] = {}
        for name, _, utt in self._items:
            manifest_of.setdefault(utt.id, name)
        skipped: list[Skipped] = []
        # One call over all splits, so a duplicate id across splits is caught too.
        items = ((source, utt) for _, source, utt in self._items)
        cuts = cuts_from_utterances(items, skip_invalid=self.skip_invalid, skipped=skipped)
        for s in skipped:
            self.skip(s.id, s.source, s.reason, _validation_reason(s.reason))
        by_manifest: dict[str, list] = {name: [] for name in self._manifests}
        for cut in cuts:
            by_manifest[manifest_of[cut.id]].append(cut)
        if not any(by_manifest.values()):
            if report.skipped_items:  # the reasons are what the user needs to mend the corpus
                self._check_targets([None])
                write_skipped(report.skipped_items, self._path(None))
            raise ManifestError(
                f"{report.corpus}: no usable utterance ({report.total_found} found, "
                f"{sum(report.skipped.values())} skipped"
                + (f", reasons in {self._path(None)}" if report.skipped_items else "")
                + "); no manifest written"
            )
        names = [n for n, c in by_manifest.items() if c]
        self._check_targets(names + ([None] if report.skipped_items else []))
        for name in names:
            report.kept[name] = len(by_manifest[name])
            report.paths.append(
                write_manifest(
                    CutSet.from_cuts(by_manifest[name]), self._path(name), self.overwrite
                )
            )
        if report.skipped_items:
            write_skipped(report.skipped_items, self._path(None))
            report.paths.append(self._path(None))
        elif self.overwrite:  # a list left by an earlier run would describe skips this one did not make
            self._path(None).unlink(missing_ok=True)
        written = set(report.paths)
        for stale in sorted([*report.output_dir.glob("cuts_*.jsonl.gz"), self._path(None)]):
            if stale not in written and stale.exists():
                self.warn(f"{stale}: left from an earlier run (not written by this one)")
        return report


def check_fraction(fraction: float) -> None:
    if not 0 <= fraction < 1:
        raise OptionError(f"dev_fraction must be in [0, 1), got {fraction}")


def dev_speakers(speakers: Iterable[str], fraction: float) -> set[str]:
    """Speakers carved out of a training set as dev, deterministically.

    Speakers are ordered by the SHA-1 of their id (stable across machines,
    Python versions and corpus subsets) and the first ``ceil(fraction * n)``
    are taken, keeping at least one speaker in train. ``fraction=0`` gives none.
    """
    check_fraction(fraction)
    ordered = sorted(set(speakers), key=lambda s: hashlib.sha1(s.encode("utf-8")).hexdigest())
    n = min(math.ceil(fraction * len(ordered)), len(ordered) - 1)
    return set(ordered[: max(n, 0)])
