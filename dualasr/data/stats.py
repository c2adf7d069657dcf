"""Corpus statistics in the layout of the reference study's Table 1.

One row per language: utterances per split, total, hours per split, and the
share of utterances in each surface-meaning ED bin (over all splits). Written
as rows (``tables/corpus.csv``, :func:`stats_csv`, read back by
:func:`read_stats_csv`) and as the table :func:`corpus_table` renders
(``tables/corpus.md``; the report renders the same table).
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from dualasr.atomic import atomic_write_text
from dualasr.data.manifest import ManifestError, cut_divergence, load_manifest, supervision
from dualasr.tables import Table, markdown
from dualasr.text.divergence import ED_BIN_LABELS, ed_bin

# Table 1's columns: any other split (another test regime) follows these.
SPLIT_ORDER = ("train", "dev", "test", "test_seen", "test_unseen")


@dataclass
class LanguageStats:
    utterances: Counter = field(default_factory=Counter)  # split -> count
    seconds: Counter = field(default_factory=Counter)  # split -> audio seconds
    bins: Counter = field(default_factory=Counter)  # ED bin label -> count

    @property
    def total(self) -> int:
        return sum(self.utterances.values())


def split_of(path: Path) -> str:
    """Split named by a manifest file ``cuts_<split>.jsonl.gz`` (else the file stem)."""
    m = re.match(r"cuts_(\w+?)\.jsonl(\.gz)?$", path.name)
    return m.group(1) if m else path.name.split(".")[0]


def manifest_paths(paths: list[str | Path]) -> list[Path]:
    """Expand directories into the ``cuts_*.jsonl.gz`` files under them."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.rglob("cuts_*.jsonl.gz"))
            if not found:
                raise ManifestError(f"{p}: no cuts_*.jsonl.gz manifests under this directory")
            out.extend(found)
        else:
            out.append(p)
    return out


def corpus_stats(paths: list[str | Path], unit: str = "char", check_audio: bool = False) -> dict[str, LanguageStats]:
    """Table 1 statistics of the given manifests (files or directories), per language."""
    stats: dict[str, LanguageStats] = defaultdict(LanguageStats)
    for path in manifest_paths(paths):
        split = split_of(path)
        for cut in load_manifest(path, check_audio=check_audio):
            s = stats[supervision(cut).language]
            s.utterances[split] += 1
            s.seconds[split] += cut.duration
            s.bins[ed_bin(cut_divergence(cut, unit))] += 1
    return dict(sorted(stats.items()))


def corpus_table(stats: dict[str, LanguageStats]) -> Table:
    """Table 1's layout: language | train | dev | test | total | hours | ED bins (%)."""
    splits = [s for s in SPLIT_ORDER if any(st.utterances[s] for st in stats.values())]
    splits += sorted({s for st in stats.values() for s in st.utterances} - set(splits))
    head = ["language", *splits, "total", *(f"h {s}" for s in splits), *(f"ED {b}" for b in ED_BIN_LABELS)]
    table = Table(head, caption="")
    for lang, st in stats.items():
        total = st.total or 1
        table.add(
            [lang]
            + [f"{st.utterances[s]:,}" for s in splits]
            + [f"{st.total:,}"]
            + [f"{st.seconds[s] / 3600:.2f}" for s in splits]
            + [f"{100 * st.bins[b] / total:.1f} %" for b in ED_BIN_LABELS]
        )
    return table


def format_table(stats: dict[str, LanguageStats]) -> str:
    """Markdown of :func:`corpus_table`."""
    return markdown(corpus_table(stats))


#: ``tables/corpus.csv``: one row per language and count; ``kind`` is
#: ``utterances`` or ``seconds`` (``key`` = split) or ``ed_bin`` (``key`` = bin label).
STATS_COLUMNS = ("language", "kind", "key", "value")


def stats_csv(stats: dict[str, LanguageStats]) -> str:
    """The statistics as rows (:data:`STATS_COLUMNS`)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(STATS_COLUMNS)
    for lang, st in stats.items():
        for kind, counts in (("utterances", st.utterances), ("seconds", st.seconds), ("ed_bin", st.bins)):
            for key, value in counts.items():
                w.writerow([lang, kind, key, value])
    return buf.getvalue()


def read_stats_csv(path: str | Path) -> dict[str, LanguageStats]:
    """``tables/corpus.csv`` read back; a malformed file is an error naming it."""
    stats: dict[str, LanguageStats] = {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                st = stats.setdefault(r["language"], LanguageStats())
                counts = {"utterances": st.utterances, "seconds": st.seconds, "ed_bin": st.bins}[r["kind"]]
                counts[r["key"]] = float(r["value"]) if r["kind"] == "seconds" else int(r["value"])
    except (KeyError, ValueError, TypeError, csv.Error) as e:
        raise ManifestError(f"{path}: not corpus statistics ({STATS_COLUMNS}): {e}") from None
    return stats


def write_stats(stats: dict[str, LanguageStats], out_dir: str | Path) -> list[Path]:
    """Write ``tables/corpus.csv`` and ``tables/corpus.md`` under ``out_dir`` (overwriting)."""
    tables = Path(out_dir) / "tables"
    atomic_write_text(tables / "corpus.csv", stats_csv(stats), overwrite=True)
    atomic_write_text(tables / "corpus.md", format_table(stats) + "\n", overwrite=True)
    return [tables / "corpus.csv", tables / "corpus.md"]
