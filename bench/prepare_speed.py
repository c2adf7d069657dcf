"""Speed of ``prepare_l2arctic`` on a 20,000-utterance corpus in the L2-ARCTIC layout.

A temporary corpus of 24 speakers is generated (tiny 44.1 kHz WAVs of 0.1 s, a
prompt per utterance, a manual-annotation TextGrid with ~35 phone intervals
mixing every tag kind of the grammar, plus a words tier). Every utterance is
annotated, the worst case: the real corpus annotates 3,599 of 26,867. The
timed run gives utterances per second; a second, profiled run (cProfile, so
slower) shows where the time goes.

    .venv/bin/python bench/prepare_speed.py [--items 20000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from praatio import textgrid as praatio_textgrid

from dualasr.data.prepare import prepare_l2arctic
from dualasr.data.prepare.l2arctic import L1_OF_SPEAKER

PROMPT = "Author of the danger trail, Philip Steels, etc."
# ~35 intervals: words of the prompt with correct phones, and every error tag kind.
LABELS = (
    "sil AO1 TH,T,s ER0 sil AH1,AO*,s V DH AH0 D,sil,d EY1 N JH ER0 sil,AH,a T R EY1 L sp "
    "F IH1 L IH0 P S T IY1 L Z,err,s sil EH1 T S EH1 T ER0 AH0 sil"
).split()
# Where the profiled time goes: (label, function name as pstats shows it).
STAGES = [
    ("list the corpus", "_items"),
    ("read TextGrids (praatio)", "openTextgrid"),
    ("parse phone labels", "parse_phone_label"),
    ("read + normalise prompts", "_read_prompt"),
    ("validate + read WAV headers (lhotse)", "cuts_from_utterances"),
    ("  of which Recording.from_file", "from_file"),
    ("write manifests (gzip jsonl)", "write_manifest"),
]


def textgrid(labels: list[str], step: float = 0.01) -> str:
    """An L2-ARCTIC-style annotation (words + phones tiers), written by praatio."""
    xmax = round(len(labels) * step, 4)
    tg = praatio_textgrid.Textgrid()
    tg.addTier(praatio_textgrid.IntervalTier("words", [(0, xmax, "author")], 0, xmax))
    phones = [(round(i * step, 4), round((i + 1) * step, 4), lab) for i, lab in enumerate(labels)]
    tg.addTier(praatio_textgrid.IntervalTier("phones", phones, 0, xmax))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.TextGrid"
        tg.save(str(path), format="long_textgrid", includeBlankSpaces=True)
        return path.read_text(encoding="utf-8")


def build_corpus(root: Path, items: int) -> None:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(4410, dtype=np.int16), 44100, format="WAV", subtype="PCM_16")
    wav, tg = buf.getvalue(), textgrid(LABELS)
    speakers = sorted(L1_OF_SPEAKER)
    for spk in speakers:
        for d in ("wav", "transcript", "annotation"):
            (root / spk / d).mkdir(parents=True)
    for i in range(items):
        spk, stem = speakers[i % len(speakers)], f"arctic_a{i // len(speakers):04d}"
        (root / spk / "wav" / f"{stem}.wav").write_bytes(wav)
        (root / spk / "transcript" / f"{stem}.txt").write_text(PROMPT + "\n", encoding="utf-8")
        (root / spk / "annotation" / f"{stem}.TextGrid").write_text(tg, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--keep", type=Path, help="build the corpus here and keep it")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dualasr-bench-"))
    root = args.keep or tmp / "l2arctic"
    try:
        t0 = time.perf_counter()
        if not (root / "ABA").is_dir():
            build_corpus(root, args.items)
        print(
            f"corpus: {args.items} utterances in {root} (built in {time.perf_counter() - t0:.1f} s)"
        )

        t0 = time.perf_counter()
        report = prepare_l2arctic(root, tmp / "out", dev_speakers=[], test_speakers=[])
        seconds = time.perf_counter() - t0
        print(
            f"prepare_l2arctic: {report.total_kept} utterances in {seconds:.1f} s = "
            f"{report.total_kept / seconds:,.0f} utterances/s"
        )

        profiler = cProfile.Profile()
        profiler.enable()
        prepare_l2arctic(root, tmp / "out", dev_speakers=[], test_speakers=[], overwrite=True)
        profiler.disable()
        stats = pstats.Stats(profiler)
        total = max(v[3] for v in stats.stats.values())  # cumulative time of the outermost call
        cumulative: dict[str, float] = {}
        for (_, _, name), (_, _, _, cum, _) in stats.stats.items():
            cumulative[name] = max(cumulative.get(name, 0.0), cum)
        print(f"where the time goes (profiled run, {total:.1f} s with cProfile overhead):")
        for label, name in STAGES:
            cum = cumulative.get(name, 0.0)
            print(f"  {label:40s} {cum:7.2f} s  {100 * cum / total:5.1f} %")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
