"""``dualasr transcribe``'s output: many files, one result each, as coloured
text, JSON Lines or CSV.

JSON: one :meth:`~dualasr.learner.transcribe.Transcription.to_dict` object
per line, in the order of the files (JSON Lines: a single file gives one
valid JSON object; results stream out as they are made). CSV: one row per
diff word, with the file. A file that fails is one ``error: ...`` line on
stderr and the others go on.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import track
from rich.text import Text

from dualasr.errors import DualasrError

from .package import load_package
from .transcribe import TICKS, Transcription, transcribe

CSV_COLUMNS = ["file", "ErrorType", "Expected", "Heard", "Offset", "Duration", "AccuracyScore", "Confidence"]
#: Colour of each word error type in the text output.
COLOURS = {"None": "", "Mispronunciation": "bold yellow", "Omission": "bold red", "Insertion": "bold cyan"}


def run_files(model: Path, audio: list[Path], fmt: str, *, progress: bool = True, **options) -> list[Path]:
    """Transcribe every file of ``audio`` with the package ``model`` and
    write each result to stdout in ``fmt`` (text, json, csv); returns the
    files that failed (reported on stderr)."""
    out, err = Console(file=sys.stdout, highlight=False), Console(file=sys.stderr, highlight=False)
    package = load_package(model)
    writer = csv.writer(sys.stdout, lineterminator="\n") if fmt == "csv" else None
    if writer:
        writer.writerow(CSV_COLUMNS)
    failed = []
    for path in track(audio, description="transcribe", console=err, disable=not progress or len(audio) < 2):
        try:
            result = transcribe(package, path, **options)
        except DualasrError as e:
            sys.stderr.write(f"error: {e}\n")  # one line, never wrapped
            failed.append(path)
            continue
        if fmt == "json":
            sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
        elif writer:
            for d in result.to_dict()["diff"]:
                writer.writerow([str(path), *(d[c] for c in CSV_COLUMNS[1:])])
        else:
            out.print(render_text(result))
        sys.stdout.flush()
    return failed


def render_text(result: Transcription) -> Text:
    """A result for the terminal: the model and its domain, the surface line
    with each differing word coloured by its error type, the meaning line,
    one line per difference with its time, and the warnings."""
    d = result.to_dict()
    t = Text()
    t.append(f"{d['audio'].get('file', '')}  ({d['audio']['duration']:.2f} s)  model {d['model']['label']} "
             f"[{d['model']['language']}]\n", style="bold")  # fmt: skip
    if d["surface"] is not None:
        t.append("  said:  ")
        words = [(w["Heard"], COLOURS[w["ErrorType"]]) for w in d["diff"] if w["Heard"]] if d["diff"] else \
                [(w["Word"], "") for w in d["surface"]["words"]] or [(d["surface"]["text"], "")]  # fmt: skip
        for word, style in words:
            t.append(word, style=style)
            t.append(" ")
        t.append("\n")
    if d["meaning"] is not None:
        t.append(f"  meant: {d['meaning']['text']}" + ("  (given)" if d["meaning"]["source"] == "user" else "") + "\n")
    for w in d["diff"]:
        if w["ErrorType"] != "None":
            t.append(f"    {w['Offset'] / TICKS:6.2f} s  {w['ErrorType']:<16}", style=COLOURS[w["ErrorType"]])
            t.append(f" expected {w['Expected']!r:<14} heard {w['Heard']!r}\n")
    if not d["reliable"]:
        t.append("  NOT RELIABLE: not pronunciation feedback\n", style="bold red")
    for warning in d["warnings"]:
        t.append(f"  note: {warning}\n", style="dim")
    return t
